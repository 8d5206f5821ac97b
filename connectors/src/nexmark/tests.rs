use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};

use super::model::{
    AUCTION_ID_LEAD, CHANNELS, FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID, HOT_CHANNELS, PERSON_ID_LEAD,
    US_STATES, last_auction, last_person,
};
use super::*;

fn options(kind: EventKind, events: u64) -> NexmarkOptions {
    NexmarkOptions { number_of_rows: Some(events), ..NexmarkOptions::new(kind) }
}

fn all_batches(options: &NexmarkOptions, batch_size: usize) -> Vec<RecordBatch> {
    let mut generator = NexmarkGenerator::new(options);
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(batch_size).unwrap() {
        assert!(batch.num_rows() <= batch_size);
        batches.push(batch);
    }
    batches
}

fn one_batch(options: &NexmarkOptions) -> RecordBatch {
    let batches = all_batches(options, 1 << 20);
    arrow::compute::concat_batches(&kind_schema(options.kind), &batches).unwrap()
}

/// The event numbers a table of `options.kind` emits, in order.
fn emitted(options: &NexmarkOptions) -> Vec<u64> {
    let mut generator = NexmarkGenerator::new(options);
    std::iter::from_fn(|| generator.next_in_order()).collect()
}

fn int_column(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch.column_by_name(name).unwrap().as_primitive::<Int64Type>().values().to_vec()
}

fn time_column(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch.column_by_name(name).unwrap().as_primitive::<TimestampMillisecondType>().values().to_vec()
}

fn text_column(batch: &RecordBatch, name: &str) -> Vec<String> {
    let column = batch.column_by_name(name).unwrap().as_string::<i32>();
    (0..column.len()).map(|i| column.value(i).to_string()).collect()
}

#[test]
fn the_same_seed_gives_the_same_events_whatever_the_batch_size() {
    for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
        let options = options(kind, 5_000);
        let whole = one_batch(&options);
        let pieces = all_batches(&options, 7);
        assert_eq!(arrow::compute::concat_batches(&kind_schema(kind), &pieces).unwrap(), whole, "{kind:?}");
        let other = one_batch(&NexmarkOptions { seed: 43, ..options.clone() });
        assert_eq!(other.num_rows(), whole.num_rows());
        assert_ne!(other, whole, "{kind:?}: seed 43 gave the events of seed 42");
    }
}

#[test]
fn proportions_are_1_3_46_over_50000_events() {
    let counts: Vec<usize> = [EventKind::Person, EventKind::Auction, EventKind::Bid]
        .into_iter()
        .map(|kind| one_batch(&options(kind, 50_000)).num_rows())
        .collect();
    assert_eq!(counts, vec![1_000, 3_000, 46_000]);
    // A run that stops mid-cycle: events 0..=53 are 2 persons, 6 auctions, 46 bids.
    let counts: Vec<usize> = [EventKind::Person, EventKind::Auction, EventKind::Bid]
        .into_iter()
        .map(|kind| one_batch(&options(kind, 54)).num_rows())
        .collect();
    assert_eq!(counts, vec![2, 6, 46]);
}

#[test]
fn event_time_goes_back_only_for_delayed_events_and_by_less_than_the_delay() {
    let options = options(EventKind::Bid, 50_000);
    let sequence = options.sequence();
    let order = emitted(&options);
    assert_eq!(order.len(), 46_000);
    let times = time_column(&one_batch(&options), "datetime");
    let mut max = i64::MIN;
    let mut delayed = 0;
    let mut behind = 0;
    for (&n, &time) in order.iter().zip(&times) {
        assert_eq!(time, sequence.event_time_ms(n), "event {n} has its own event time");
        let delay = sequence.delay_ms(n);
        if delay > 0 {
            delayed += 1;
        } else {
            assert!(time >= max, "on-time event {n} at {time} went back behind {max}");
        }
        if time < max {
            behind += 1;
            assert!(max - time < options.max_delay_ms, "event {n} lags {} ms", max - time);
        }
        max = max.max(time);
    }
    // About 10 % are delayed, and at 10 events per ms most of them come out behind.
    assert!((4_000..5_200).contains(&delayed), "{delayed} delayed bids of 46000");
    assert!(behind > delayed / 2, "only {behind} of {delayed} delayed bids came out of order");

    // Without delays, event time never goes back.
    let in_order = NexmarkOptions { delay_probability: 0.0, ..options.clone() };
    let times = time_column(&one_batch(&in_order), "datetime");
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let no_delay = NexmarkOptions { max_delay_ms: 0, ..options };
    assert_eq!(one_batch(&no_delay), one_batch(&in_order));
}

#[test]
fn event_time_follows_the_event_rate() {
    let options =
        NexmarkOptions { events_per_second: 1_000, delay_probability: 0.0, ..options(EventKind::Person, 500) };
    let times = time_column(&one_batch(&options), "datetime");
    // Persons are every 50th event: 50 ms apart at 1000 events per second.
    let expected: Vec<i64> = (0..10).map(|i| options.start_time_ms + 50 * i).collect();
    assert_eq!(times, expected);
}

#[test]
fn tables_of_each_kind_split_one_sequence_in_one_order() {
    let events = 20_000;
    let union: Vec<u64> = {
        // The union emits each event where the table of its kind does; merging the three by the
        // same rule must give every event once, each kind's events in its table's order.
        let sequence = options(EventKind::Bid, events).sequence();
        let mut all: Vec<u64> = (0..events).collect();
        all.sort_by_key(|&n| match sequence.delay_ms(n) {
            0 => (sequence.event_time_ms(n), 1, n),
            delay => (sequence.event_time_ms(n) + delay, 0, n),
        });
        all
    };
    for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
        let of_kind: Vec<u64> = union.iter().copied().filter(|&n| EventSequence::kind(n) == kind).collect();
        assert_eq!(emitted(&options(kind, events)), of_kind, "{kind:?}");
    }
}

#[test]
fn ids_and_references_follow_the_reference_generator() {
    let events = 50_000;
    let persons = one_batch(&options(EventKind::Person, events));
    let auctions = one_batch(&options(EventKind::Auction, events));
    let bids = one_batch(&options(EventKind::Bid, events));

    // Persons and auctions are numbered in event order.
    let mut person_ids = int_column(&persons, "id");
    person_ids.sort_unstable();
    assert_eq!(person_ids, (0..1_000).map(|i| FIRST_PERSON_ID + i).collect::<Vec<_>>());
    let mut auction_ids = int_column(&auctions, "id");
    auction_ids.sort_unstable();
    assert_eq!(auction_ids, (0..3_000).map(|i| FIRST_AUCTION_ID + i).collect::<Vec<_>>());

    for (i, state) in text_column(&persons, "state").iter().enumerate() {
        assert!(US_STATES.contains(&state.as_str()), "person {i}: state {state}");
    }
    for email in text_column(&persons, "emailaddress") {
        assert!(email.ends_with(".com") && email.contains('@'), "{email}");
    }
    for card in text_column(&persons, "creditcard") {
        assert!(card.len() == 19 && card.split(' ').all(|g| g.len() == 4), "{card}");
    }

    // An auction's seller is a person generated already or one of the next few.
    let options = options(EventKind::Auction, events);
    let order = emitted(&options);
    let sellers = int_column(&auctions, "seller");
    let (dates, expires) = (time_column(&auctions, "datetime"), time_column(&auctions, "expires"));
    let (initial, reserve) = (int_column(&auctions, "initialbid"), int_column(&auctions, "reserve"));
    for (i, &n) in order.iter().enumerate() {
        let latest = FIRST_PERSON_ID + last_person(n);
        assert!((FIRST_PERSON_ID..=latest + PERSON_ID_LEAD).contains(&sellers[i]), "auction event {n}: seller");
        assert!(expires[i] > dates[i], "auction event {n} expires before it starts");
        assert!(reserve[i] >= initial[i] && initial[i] >= 100, "auction event {n}: prices");
    }
    for category in int_column(&auctions, "category") {
        assert!((FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + 5).contains(&category));
    }

    // A bid names an auction generated already (among the latest hundred) or in flight (one of
    // the next ten), and a bidder generated already or one of the next few.
    let order = emitted(&NexmarkOptions { kind: EventKind::Bid, ..options });
    let (auction, bidder, price) =
        (int_column(&bids, "auction"), int_column(&bids, "bidder"), int_column(&bids, "price"));
    let mut hot_auction = 0;
    for (i, &n) in order.iter().enumerate() {
        let latest = FIRST_AUCTION_ID + last_auction(n);
        assert!(
            (latest - 100..=latest + AUCTION_ID_LEAD).contains(&auction[i]) && auction[i] >= FIRST_AUCTION_ID,
            "bid event {n}: auction {} with latest auction {latest}",
            auction[i]
        );
        hot_auction += usize::from((auction[i] - FIRST_AUCTION_ID) % 100 == 0);
        let latest = FIRST_PERSON_ID + last_person(n);
        assert!((FIRST_PERSON_ID..=latest + PERSON_ID_LEAD).contains(&bidder[i]), "bid event {n}: bidder");
        assert!((100..=100_000_000).contains(&price[i]), "bid event {n}: price {}", price[i]);
    }
    // Half the bids go to hot auctions (a few more by chance).
    assert!((22_000..25_000).contains(&hot_auction), "{hot_auction} bids for hot auctions");

    // About half the bids come through the hot channels; nine in ten other URLs carry the
    // channel id.
    let (channels, urls) = (text_column(&bids, "channel"), text_column(&bids, "url"));
    let mut per_channel: HashMap<&str, &str> = HashMap::new();
    let (mut hot, mut with_id, mut other) = (0, 0, 0);
    for (channel, url) in channels.iter().zip(&urls) {
        assert!(url.starts_with("https://www.nexmark.com/"), "{url}");
        assert_eq!(url.split('/').nth(6).map(|s| s.starts_with("item.htm?query=1")), Some(true), "{url}");
        assert_eq!(*per_channel.entry(channel).or_insert(url), url.as_str(), "one URL per channel");
        if HOT_CHANNELS.contains(&channel.as_str()) {
            hot += 1;
            assert!(!url.contains("channel_id="));
        } else {
            let number: usize = channel.strip_prefix("channel-").unwrap().parse().unwrap();
            assert!(number < CHANNELS);
            other += 1;
            with_id += usize::from(url.contains("&channel_id="));
        }
    }
    assert!((21_000..25_000).contains(&hot), "{hot} bids through hot channels");
    assert!(with_id * 100 > other * 85 && with_id * 100 < other * 95, "{with_id} of {other} URLs with a channel id");
}

#[test]
fn extra_pads_events_to_their_average_size() {
    let bids = one_batch(&options(EventKind::Bid, 10_000));
    let lengths: Vec<usize> = text_column(&bids, "extra").iter().map(String::len).collect();
    let average = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    // 100 bytes on average, 32 of them in the numbers.
    assert!((66.0..70.0).contains(&average), "average extra {average}");
    assert!(lengths.iter().all(|&l| (54..=82).contains(&l)));
    let text = text_column(&bids, "extra").concat();
    assert!(text.bytes().all(|b| b.is_ascii_lowercase()));
    let mut letters: BTreeMap<u8, usize> = BTreeMap::new();
    for b in text.bytes() {
        *letters.entry(b).or_default() += 1;
    }
    assert_eq!(letters.len(), 26);
}

fn table(columns: &[(&str, DataType)], options: &[(&str, &str)]) -> TableDef {
    let fields: Vec<Field> = columns.iter().map(|(name, t)| Field::new(*name, t.clone(), true)).collect();
    TableDef {
        name: "t".into(),
        schema: Arc::new(Schema::new(fields)),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    }
}

#[test]
fn options_and_columns_are_checked() {
    let connector = NexmarkConnector;
    let bid_columns: Vec<(String, DataType)> =
        kind_schema(EventKind::Bid).fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let bid_columns: Vec<(&str, DataType)> = bid_columns.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let check = |columns: &[(&str, DataType)], options: &[(&str, &str)]| {
        connector.validate(&table(columns, options), Role::Source).map_err(|e| e.to_string())
    };
    assert!(check(&bid_columns, &[("kind", "bid"), ("number-of-rows", "10")]).is_ok());
    // Any subset, any case.
    assert!(check(&[("Price", DataType::Int64), ("dateTime", timestamp_type())], &[("kind", "BID")]).is_ok());

    let error = check(&bid_columns, &[("kind", "person")]).unwrap_err();
    assert!(error.contains("declare its columns: id BIGINT, name STRING, emailAddress STRING"), "{error}");
    let error = check(&[("price", DataType::Int32)], &[("kind", "bid")]).unwrap_err();
    assert!(error.contains("column 'price' is declared INT but nexmark bid events have it as BIGINT"), "{error}");
    let error = check(&[("seller", DataType::Int64)], &[("kind", "bid")]).unwrap_err();
    assert!(error.contains("nexmark bid events have no column 'seller'; their columns are auction BIGINT"), "{error}");
    let error = check(&bid_columns, &[("kind", "bids")]).unwrap_err();
    assert!(error.contains("option 'kind' must be one of 'person', 'auction', 'bid'"), "{error}");
    let error = check(&bid_columns, &[("kind", "bid"), ("delayed-event.probability", "1.5")]).unwrap_err();
    assert!(error.contains("from 0 to 1"), "{error}");
    let error = check(&bid_columns, &[("kind", "bid"), ("delayed-event.max-delay", "3 weeks")]).unwrap_err();
    assert!(error.contains("must be a duration"), "{error}");
    let error = check(&bid_columns, &[("kind", "bid"), ("events-per-second", "0")]).unwrap_err();
    assert!(error.contains("'events-per-second' must be a positive integer"), "{error}");

    let parsed = NexmarkOptions::parse(&table(
        &bid_columns,
        &[("kind", "auction"), ("rows-per-second", "500"), ("delayed-event.max-delay", "1500 ms")],
    ))
    .unwrap();
    assert_eq!((parsed.kind, parsed.events_per_second, parsed.max_delay_ms), (EventKind::Auction, 500, 1_500));
}

/// `cargo test -p streamsql-connectors --release nexmark_speed -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn nexmark_speed() {
    for kind in [EventKind::Bid, EventKind::Auction, EventKind::Person] {
        let events = 5_000_000;
        let started = std::time::Instant::now();
        let rows: usize = all_batches(&options(kind, events), 8192).iter().map(RecordBatch::num_rows).sum();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{kind:?}: {rows} rows in {seconds:.2} s: {:.2} M rows/s, {:.2} M events/s of the sequence",
            rows as f64 / seconds / 1e6,
            events as f64 / seconds / 1e6
        );
    }
}
