//! The Nexmark event sequence: what event number `n` is, as a pure function of the options.
//!
//! Event `n` is a person, an auction or a bid by `n mod 50` (1:3:46). Its fields come from a
//! random stream seeded by `(seed, n)` alone, so any event can be generated without the ones
//! before it: a table of bids skips persons and auctions without drawing for them, and sees the
//! same bids as a union of all three kinds would. Ids follow the reference generator: persons and
//! auctions are numbered in order from 1000, a bid names an auction generated lately (or one of
//! the next 10, "in flight"), half the bids go to the first auction of the latest hundred (hot
//! auctions), and sellers and bidders are drawn likewise from the 1000 most recent persons.
//!
//! Event time is synthetic: event `n` happens at `start + n / events_per_second`. A delayed event
//! (probability `delay_probability`) keeps its event time but is emitted up to `max_delay_ms`
//! later (see `generator`), the out-of-order arrivals of the reference generator.

use std::fmt::Write as _;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Person,
    Auction,
    Bid,
}

impl EventKind {
    /// The `'kind'` option value.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }

    /// The kind's share of the events: 1, 3 or 46 of every [`TOTAL_PROPORTION`].
    pub fn proportion(self) -> u64 {
        match self {
            EventKind::Person => PERSON_PROPORTION,
            EventKind::Auction => AUCTION_PROPORTION,
            EventKind::Bid => BID_PROPORTION,
        }
    }
}

pub const PERSON_PROPORTION: u64 = 1;
pub const AUCTION_PROPORTION: u64 = 3;
pub const BID_PROPORTION: u64 = 46;
pub const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

/// The id of the first person and of the first auction.
pub const FIRST_PERSON_ID: i64 = 1000;
pub const FIRST_AUCTION_ID: i64 = 1000;
/// Categories are `FIRST_CATEGORY_ID ..= FIRST_CATEGORY_ID + CATEGORIES - 1`.
pub const FIRST_CATEGORY_ID: i64 = 10;
const CATEGORIES: u64 = 5;
/// Auctions a bid may name: the latest this many, plus [`AUCTION_ID_LEAD`] not generated yet.
pub const IN_FLIGHT_AUCTIONS: i64 = 100;
pub const AUCTION_ID_LEAD: i64 = 10;
/// Persons a seller or bidder is drawn from: the latest this many, plus [`PERSON_ID_LEAD`].
pub const ACTIVE_PEOPLE: i64 = 1000;
pub const PERSON_ID_LEAD: i64 = 10;
/// One in this many bids / auctions is *not* for a hot auction / seller / bidder.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
/// Hot auctions, sellers and bidders are the first of each group of this many.
const HOT_GROUP: i64 = 100;
/// One in this many bids comes through one of the [`HOT_CHANNELS`].
const HOT_CHANNEL_RATIO: u64 = 2;
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Other bids come through `channel-0` .. `channel-9999`.
pub const CHANNELS: usize = 10_000;
/// Average sizes in bytes, which the `extra` column pads events to.
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
pub const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];

/// Streams of randomness independent of each other for the same seed.
const FIELDS_STREAM: u64 = 0x6e65_786d_6172_6b00;
const DELAY_STREAM: u64 = 0x6465_6c61_7965_6400;
const CHANNEL_STREAM: u64 = 0x6368_616e_6e65_6c00;

/// SplitMix64: tiny, fast, and ours, so the same seed gives the same events whatever version of
/// `rand` is in the build.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream numbered `n` of `seed`.
    pub fn new(seed: u64, n: u64) -> Self {
        Rng { state: mix(seed ^ mix(n.wrapping_add(0x9e37_79b9_7f4a_7c15))) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Appends `len` random lower-case letters, eight from each draw: each byte `b` of the draw
    /// becomes `'a' + b * 26 / 256`, computed for four bytes at once in 16-bit lanes.
    fn letters(&mut self, out: &mut String, len: usize) {
        const LANES: u64 = 0x00ff_00ff_00ff_00ff;
        let mut bytes = std::mem::take(out).into_bytes();
        let end = bytes.len() + len;
        bytes.reserve(len + 8);
        // Whole words (a fixed-size copy is a single store), cut to length at the end.
        while bytes.len() < end {
            let draw = self.next_u64();
            let even = (((draw & LANES) * 26) >> 8) & LANES;
            let odd = ((((draw >> 8) & LANES) * 26) >> 8) & LANES;
            let word = (even | (odd << 8)) + 0x6161_6161_6161_6161;
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.truncate(end);
        *out = String::from_utf8(bytes).expect("'a' to 'z' and what was there are UTF-8");
    }

    /// A word of 3 to `max_len - 1` characters: letters with `special` one time in 13, trimmed of
    /// spaces at either end.
    fn word(&mut self, out: &mut String, max_len: u64, special: char) {
        let start = out.len();
        let len = 3 + self.below(max_len - 3);
        for _ in 0..len {
            if self.below(13) == 0 {
                out.push(special);
            } else {
                out.push(char::from(b'a' + self.below(26) as u8));
            }
        }
        if special == ' ' {
            let kept = out.trim_end_matches(' ').len().max(start);
            out.truncate(kept);
            let leading = out[start..].len() - out[start..].trim_start_matches(' ').len();
            out.drain(start..start + leading);
        }
    }

    /// Padding that brings an event of `current` bytes to about `average` bytes (±20 %).
    fn extra(&mut self, out: &mut String, current: usize, average: usize) {
        if current > average {
            return;
        }
        let wanted = average - current;
        let delta = (wanted as f64 * 0.2).round() as u64;
        let len = wanted as u64 - delta + if delta == 0 { 0 } else { self.below(2 * delta) };
        self.letters(out, len as usize);
    }

    /// A price in cents, log-uniform between 1.00 and 1,000,000.00.
    fn price(&mut self) -> i64 {
        ((self.unit() * 6.0 * std::f64::consts::LN_10).exp() * 100.0).round() as i64
    }
}

/// A bid's URL: three short directories and an item page.
fn url(rng: &mut Rng, out: &mut String) {
    out.push_str("https://www.nexmark.com/");
    rng.word(out, 5, '_');
    out.push('/');
    rng.word(out, 5, '_');
    out.push('/');
    rng.word(out, 5, '_');
    out.push_str("/item.htm?query=1");
}

/// The channels bids come through, with their URLs (generated once per seed).
#[derive(Debug, Clone)]
pub struct Channels {
    /// `(channel, url)` for the hot channels, then for `channel-0` .. `channel-9999`.
    hot: Vec<(String, String)>,
    other: Vec<(String, String)>,
}

impl Channels {
    pub fn new(seed: u64) -> Self {
        let hot = HOT_CHANNELS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut rng = Rng::new(seed ^ CHANNEL_STREAM, (CHANNELS + i) as u64);
                let mut address = String::new();
                url(&mut rng, &mut address);
                (name.to_string(), address)
            })
            .collect();
        let other = (0..CHANNELS)
            .map(|i| {
                let mut rng = Rng::new(seed ^ CHANNEL_STREAM, i as u64);
                let mut address = String::new();
                url(&mut rng, &mut address);
                // Nine in ten carry a channel id in the URL (q21 extracts it); the id is the
                // channel number's bits reversed, as a Java int made positive (or not, for 1).
                if rng.below(10) > 0 {
                    let _ = write!(address, "&channel_id={}", (i as i32).reverse_bits().wrapping_abs());
                }
                (format!("channel-{i}"), address)
            })
            .collect();
        Channels { hot, other }
    }
}

/// A person (`n mod 50` = 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: &'static str,
    pub state: &'static str,
    pub date_time: i64,
    pub extra: String,
}

/// An auction (`n mod 50` in 1..=3).
#[derive(Debug, Clone, PartialEq)]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

/// A bid (`n mod 50` in 4..=49). `channel` and `url` index [`Channels`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: usize,
    pub date_time: i64,
    pub extra: String,
}

impl Bid {
    /// The bid's channel and URL.
    pub fn channel<'a>(&self, channels: &'a Channels) -> (&'a str, &'a str) {
        let (channel, url) = match self.channel.checked_sub(HOT_CHANNELS.len()) {
            None => &channels.hot[self.channel],
            Some(i) => &channels.other[i],
        };
        (channel, url)
    }
}

/// The event sequence of one seed and event-time setting.
#[derive(Debug, Clone)]
pub struct EventSequence {
    pub seed: u64,
    pub start_time_ms: i64,
    pub events_per_second: u64,
    pub delay_probability: f64,
    pub max_delay_ms: i64,
}

impl EventSequence {
    /// What event `n` is.
    pub fn kind(n: u64) -> EventKind {
        match n % TOTAL_PROPORTION {
            r if r < PERSON_PROPORTION => EventKind::Person,
            r if r < PERSON_PROPORTION + AUCTION_PROPORTION => EventKind::Auction,
            _ => EventKind::Bid,
        }
    }

    /// When event `n` happens, in ms since the epoch.
    pub fn event_time_ms(&self, n: u64) -> i64 {
        let rate = self.events_per_second.max(1);
        // 64-bit division unless n * 1000 overflows (after 584 years at a million events a second).
        let offset = match n.checked_mul(1000) {
            Some(scaled) => i128::from(scaled / rate),
            None => i128::from(n) * 1000 / i128::from(rate),
        };
        i64::try_from(i128::from(self.start_time_ms) + offset).unwrap_or(i64::MAX)
    }

    /// How much later than its event time event `n` is emitted (0: on time).
    pub fn delay_ms(&self, n: u64) -> i64 {
        if self.delay_probability <= 0.0 || self.max_delay_ms <= 0 {
            return 0;
        }
        let mut rng = Rng::new(self.seed ^ DELAY_STREAM, n);
        if rng.unit() < self.delay_probability { 1 + rng.below(self.max_delay_ms as u64) as i64 } else { 0 }
    }

    fn rng(&self, n: u64) -> Rng {
        Rng::new(self.seed ^ FIELDS_STREAM, n)
    }

    /// Person `n`.
    pub fn person(&self, n: u64) -> Person {
        let mut rng = self.rng(n);
        let mut name = String::with_capacity(16);
        name.push_str(FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize]);
        name.push(' ');
        name.push_str(LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize]);
        let mut email_address = String::with_capacity(16);
        rng.word(&mut email_address, 7, ' ');
        email_address.push('@');
        rng.word(&mut email_address, 5, ' ');
        email_address.push_str(".com");
        let mut credit_card = String::with_capacity(19);
        for group in 0..4 {
            let sep = if group == 0 { "" } else { " " };
            let _ = write!(credit_card, "{sep}{:04}", rng.below(10_000));
        }
        let city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize];
        let state = US_STATES[rng.below(US_STATES.len() as u64) as usize];
        let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let mut extra = String::new();
        rng.extra(&mut extra, size, AVG_PERSON_BYTES);
        Person {
            id: last_person(n) + FIRST_PERSON_ID,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: self.event_time_ms(n),
            extra,
        }
    }

    /// Auction `n`.
    pub fn auction(&self, n: u64) -> Auction {
        let mut rng = self.rng(n);
        let date_time = self.event_time_ms(n);
        let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
            (last_person(n) / HOT_GROUP) * HOT_GROUP
        } else {
            next_person(n, &mut rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(CATEGORIES) as i64;
        let initial_bid = rng.price();
        // Auctions last on average as long as it takes to start IN_FLIGHT_AUCTIONS more.
        let horizon_events = IN_FLIGHT_AUCTIONS as u64 * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let horizon_ms = self.event_time_ms(n.saturating_add(horizon_events)) - date_time;
        let expires = date_time.saturating_add(1 + rng.below((horizon_ms * 2).max(1) as u64) as i64);
        let mut item_name = String::with_capacity(20);
        rng.word(&mut item_name, 20, ' ');
        let mut description = String::with_capacity(100);
        rng.word(&mut description, 100, ' ');
        let reserve = initial_bid + rng.price();
        let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let mut extra = String::new();
        rng.extra(&mut extra, size, AVG_AUCTION_BYTES);
        Auction {
            id: last_auction(n) + FIRST_AUCTION_ID,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// Bid `n`, its `extra` written into `extra` (cleared first) to spare an allocation.
    pub fn bid_into(&self, n: u64, extra: &mut String) -> Bid {
        let mut rng = self.rng(n);
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (last_auction(n) / HOT_GROUP) * HOT_GROUP
        } else {
            next_auction(n, &mut rng)
        } + FIRST_AUCTION_ID;
        // Hot bidders are the second of each hundred persons, so they are not the hot sellers.
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            (last_person(n) / HOT_GROUP) * HOT_GROUP + 1
        } else {
            next_person(n, &mut rng)
        } + FIRST_PERSON_ID;
        let price = rng.price();
        let channel = if rng.below(HOT_CHANNEL_RATIO) > 0 {
            rng.below(HOT_CHANNELS.len() as u64) as usize
        } else {
            HOT_CHANNELS.len() + rng.below(CHANNELS as u64) as usize
        };
        extra.clear();
        rng.extra(extra, 8 + 8 + 8 + 8, AVG_BID_BYTES);
        Bid { auction, bidder, price, channel, date_time: self.event_time_ms(n), extra: String::new() }
    }

    /// Bid `n`.
    pub fn bid(&self, n: u64) -> Bid {
        let mut extra = String::new();
        let bid = self.bid_into(n, &mut extra);
        Bid { extra, ..bid }
    }
}

/// The id (from 0) of the latest person at or before event `n`.
pub fn last_person(n: u64) -> i64 {
    let epoch = (n / TOTAL_PROPORTION) as i64;
    // An auction or a bid goes back to the latest person of its cycle.
    let offset = match n % TOTAL_PROPORTION {
        offset if offset < PERSON_PROPORTION => offset,
        _ => PERSON_PROPORTION - 1,
    };
    epoch * PERSON_PROPORTION as i64 + offset as i64
}

/// The id (from 0) of the latest auction at or before event `n` (-1 before the first).
pub fn last_auction(n: u64) -> i64 {
    let mut epoch = (n / TOTAL_PROPORTION) as i64;
    let offset = n % TOTAL_PROPORTION;
    let offset = if offset < PERSON_PROPORTION {
        epoch -= 1;
        AUCTION_PROPORTION - 1
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        AUCTION_PROPORTION - 1
    } else {
        offset - PERSON_PROPORTION
    };
    epoch * AUCTION_PROPORTION as i64 + offset as i64
}

/// A person (from 0) among the latest [`ACTIVE_PEOPLE`] at event `n`, or one of the next
/// [`PERSON_ID_LEAD`] not generated yet.
fn next_person(n: u64, rng: &mut Rng) -> i64 {
    let people = last_person(n) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + rng.below((active + PERSON_ID_LEAD) as u64) as i64
}

/// An auction (from 0) among the latest [`IN_FLIGHT_AUCTIONS`] at event `n`, or one of the next
/// [`AUCTION_ID_LEAD`] not generated yet.
fn next_auction(n: u64, rng: &mut Rng) -> i64 {
    let last = last_auction(n);
    let first = (last - IN_FLIGHT_AUCTIONS).max(0);
    first + rng.below((last - first + 1 + AUCTION_ID_LEAD) as u64) as i64
}
