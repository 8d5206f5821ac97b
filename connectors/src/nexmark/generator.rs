//! Nexmark events of one kind as Arrow batches, in the order they are emitted, and the paced
//! source around them.
//!
//! Emission order: an on-time event is emitted at its place; a delayed event `h` (see
//! [`EventSequence::delay_ms`]) is held back and emitted just before the first on-time event
//! whose event time reaches `event_time(h) + delay(h)`, or at the end of a bounded run. Held
//! events leave in order of that release time. The order depends only on each event's own
//! time and delay, so a table of one kind emits its events in the same order as a union of all
//! kinds would, and no event lags the newest event time before it by `max_delay_ms` or more.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use streamsql_engine::Result;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::Source;
use streamsql_engine::operator::StateSnapshot;

use super::model::{Channels, EventKind, EventSequence, TOTAL_PROPORTION};
use super::{NexmarkOptions, kind_schema};

/// Generates the events of one kind as batches of that kind's full schema.
pub struct NexmarkGenerator {
    kind: EventKind,
    sequence: EventSequence,
    /// Bid channels and URLs.
    channels: Channels,
    /// Events of the sequence to go through: `'number-of-rows'`, or unbounded.
    limit: u64,
    /// The next event number not looked at yet.
    next_event: u64,
    /// An on-time event waiting for held events released before it.
    pending: Option<u64>,
    /// Delayed events by (release time, event number).
    held: BinaryHeap<Reverse<(i64, u64)>>,
    schema: SchemaRef,
    /// Reused for each bid's `extra`.
    scratch: String,
}

impl NexmarkGenerator {
    pub fn new(options: &NexmarkOptions) -> Self {
        Self {
            kind: options.kind,
            sequence: options.sequence(),
            channels: Channels::new(options.seed),
            limit: options.number_of_rows.unwrap_or(u64::MAX),
            next_event: 0,
            pending: None,
            held: BinaryHeap::new(),
            schema: kind_schema(options.kind),
            scratch: String::new(),
        }
    }

    /// Events of the sequence (of every kind) gone through so far: what pacing counts.
    pub fn events_consumed(&self) -> u64 {
        self.next_event
    }

    /// The next `rows` events of this generator's kind (fewer at the end of a bounded run), or
    /// `None` when the run is over.
    pub fn next_batch(&mut self, rows: usize) -> Result<Option<RecordBatch>> {
        let mut columns = Columns::new(self.kind, rows);
        let mut count = 0;
        while count < rows {
            let Some(n) = self.next_in_order() else { break };
            match &mut columns {
                Columns::Person(c) => c.append(&self.sequence, n),
                Columns::Auction(c) => c.append(&self.sequence, n),
                Columns::Bid(c) => c.append(&self.sequence, &self.channels, n, &mut self.scratch),
            }
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns.finish())?))
    }

    /// The number of the next event to emit, or `None` when a bounded run is over.
    pub(super) fn next_in_order(&mut self) -> Option<u64> {
        loop {
            if let Some(on_time) = self.pending {
                let time = self.sequence.event_time_ms(on_time);
                if let Some(&Reverse((release, held))) = self.held.peek()
                    && release <= time
                {
                    self.held.pop();
                    return Some(held);
                }
                self.pending = None;
                return Some(on_time);
            }
            let n = next_of_kind(self.next_event, self.kind);
            if n >= self.limit {
                self.next_event = self.limit;
                return self.held.pop().map(|Reverse((_, held))| held);
            }
            self.next_event = n + 1;
            match self.sequence.delay_ms(n) {
                0 => self.pending = Some(n),
                delay => self.held.push(Reverse((self.sequence.event_time_ms(n).saturating_add(delay), n))),
            }
        }
    }
}

/// The first event number at or after `n` that is of `kind`.
fn next_of_kind(n: u64, kind: EventKind) -> u64 {
    let (first, count) = match kind {
        EventKind::Person => (0, EventKind::Person.proportion()),
        EventKind::Auction => (EventKind::Person.proportion(), EventKind::Auction.proportion()),
        EventKind::Bid => {
            (EventKind::Person.proportion() + EventKind::Auction.proportion(), EventKind::Bid.proportion())
        }
    };
    let offset = n % TOTAL_PROPORTION;
    if offset < first {
        n.saturating_add(first - offset)
    } else if offset < first + count {
        n
    } else {
        n.saturating_add(TOTAL_PROPORTION - offset + first)
    }
}

/// Column builders of one kind's schema.
enum Columns {
    Person(Box<PersonColumns>),
    Auction(Box<AuctionColumns>),
    Bid(Box<BidColumns>),
}

impl Columns {
    fn new(kind: EventKind, rows: usize) -> Self {
        match kind {
            EventKind::Person => Columns::Person(Box::new(PersonColumns::new(rows))),
            EventKind::Auction => Columns::Auction(Box::new(AuctionColumns::new(rows))),
            EventKind::Bid => Columns::Bid(Box::new(BidColumns::new(rows))),
        }
    }

    fn finish(self) -> Vec<ArrayRef> {
        match self {
            Columns::Person(c) => c.finish(),
            Columns::Auction(c) => c.finish(),
            Columns::Bid(c) => c.finish(),
        }
    }
}

struct PersonColumns {
    id: Int64Builder,
    name: StringBuilder,
    email_address: StringBuilder,
    credit_card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl PersonColumns {
    fn new(rows: usize) -> Self {
        Self {
            id: Int64Builder::with_capacity(rows),
            name: StringBuilder::with_capacity(rows, rows * 12),
            email_address: StringBuilder::with_capacity(rows, rows * 14),
            credit_card: StringBuilder::with_capacity(rows, rows * 19),
            city: StringBuilder::with_capacity(rows, rows * 8),
            state: StringBuilder::with_capacity(rows, rows * 2),
            date_time: TimestampMillisecondBuilder::with_capacity(rows),
            extra: StringBuilder::with_capacity(rows, rows * 140),
        }
    }

    fn append(&mut self, sequence: &EventSequence, n: u64) {
        let p = sequence.person(n);
        self.id.append_value(p.id);
        self.name.append_value(&p.name);
        self.email_address.append_value(&p.email_address);
        self.credit_card.append_value(&p.credit_card);
        self.city.append_value(p.city);
        self.state.append_value(p.state);
        self.date_time.append_value(p.date_time);
        self.extra.append_value(&p.extra);
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.email_address.finish()),
            Arc::new(self.credit_card.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

struct AuctionColumns {
    id: Int64Builder,
    item_name: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    date_time: TimestampMillisecondBuilder,
    expires: TimestampMillisecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    extra: StringBuilder,
}

impl AuctionColumns {
    fn new(rows: usize) -> Self {
        Self {
            id: Int64Builder::with_capacity(rows),
            item_name: StringBuilder::with_capacity(rows, rows * 11),
            description: StringBuilder::with_capacity(rows, rows * 50),
            initial_bid: Int64Builder::with_capacity(rows),
            reserve: Int64Builder::with_capacity(rows),
            date_time: TimestampMillisecondBuilder::with_capacity(rows),
            expires: TimestampMillisecondBuilder::with_capacity(rows),
            seller: Int64Builder::with_capacity(rows),
            category: Int64Builder::with_capacity(rows),
            extra: StringBuilder::with_capacity(rows, rows * 400),
        }
    }

    fn append(&mut self, sequence: &EventSequence, n: u64) {
        let a = sequence.auction(n);
        self.id.append_value(a.id);
        self.item_name.append_value(&a.item_name);
        self.description.append_value(&a.description);
        self.initial_bid.append_value(a.initial_bid);
        self.reserve.append_value(a.reserve);
        self.date_time.append_value(a.date_time);
        self.expires.append_value(a.expires);
        self.seller.append_value(a.seller);
        self.category.append_value(a.category);
        self.extra.append_value(&a.extra);
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.item_name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.initial_bid.finish()),
            Arc::new(self.reserve.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.expires.finish()),
            Arc::new(self.seller.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

struct BidColumns {
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl BidColumns {
    fn new(rows: usize) -> Self {
        Self {
            auction: Int64Builder::with_capacity(rows),
            bidder: Int64Builder::with_capacity(rows),
            price: Int64Builder::with_capacity(rows),
            channel: StringBuilder::with_capacity(rows, rows * 10),
            url: StringBuilder::with_capacity(rows, rows * 64),
            date_time: TimestampMillisecondBuilder::with_capacity(rows),
            extra: StringBuilder::with_capacity(rows, rows * 72),
        }
    }

    fn append(&mut self, sequence: &EventSequence, channels: &Channels, n: u64, extra: &mut String) {
        let b = sequence.bid_into(n, extra);
        let (channel, url) = b.channel(channels);
        self.auction.append_value(b.auction);
        self.bidder.append_value(b.bidder);
        self.price.append_value(b.price);
        self.channel.append_value(channel);
        self.url.append_value(url);
        self.date_time.append_value(b.date_time);
        self.extra.append_value(extra.as_str());
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.auction.finish()),
            Arc::new(self.bidder.finish()),
            Arc::new(self.price.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.url.finish()),
            Arc::new(self.date_time.finish()),
            Arc::new(self.extra.finish()),
        ]
    }
}

/// The generator as a source: projects the declared columns and paces emission to
/// `'rows-per-second'` events of the sequence.
pub(super) struct NexmarkSource {
    generator: NexmarkGenerator,
    kind: EventKind,
    rows_per_second: u64,
    columns: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    started: Option<Instant>,
    /// Rows returned so far (the position a checkpoint keeps).
    rows: u64,
    /// Events gone through before this run (a restore): not paced again.
    resumed_at: u64,
}

impl NexmarkSource {
    pub(super) fn new(options: &NexmarkOptions, columns: Vec<usize>, schema: SchemaRef, batch_size: usize) -> Self {
        Self {
            generator: NexmarkGenerator::new(options),
            kind: options.kind,
            rows_per_second: options.rows_per_second,
            columns,
            schema,
            batch_size: batch_size.max(1),
            started: None,
            rows: 0,
            resumed_at: 0,
        }
    }
}

impl Source for NexmarkSource {
    /// Rows returned so far: the generator is deterministic by seed, so a restore goes through
    /// the same events again without building their rows.
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(position_state(self.rows))
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let position = position_of(&state)?;
        while self.rows < position {
            if self.generator.next_in_order().is_none() {
                break;
            }
            self.rows += 1;
        }
        self.resumed_at = self.generator.events_consumed();
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let rows = if self.rows_per_second > 0 {
            // About twenty batches a second, so paced output flows smoothly.
            let share = self.rows_per_second.saturating_mul(self.kind.proportion()) / TOTAL_PROPORTION / 20;
            self.batch_size.min(share.max(1) as usize)
        } else {
            self.batch_size
        };
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.rows_per_second > 0 {
            let paced = self.generator.events_consumed() - self.resumed_at;
            let due = Duration::from_secs_f64(paced as f64 / self.rows_per_second as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let Some(batch) = self.generator.next_batch(rows)? else { return Ok(None) };
        self.rows += batch.num_rows() as u64;
        let batch = batch.project(&self.columns)?;
        Ok(Some(RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?))
    }
}
