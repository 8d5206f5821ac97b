//! `'connector' = 'transactions'`: card transactions from the transaction simulator of the
//! *Reproducible Machine Learning for Credit Card Fraud Detection* handbook (Le Borgne et al.,
//! chapter 3.2), with its fraud scenarios and labels, deterministic by seed.
//!
//! As in the handbook:
//! - each customer has a location on a 100 × 100 grid, a mean amount drawn from U(5, 100) (the
//!   standard deviation is half of it) and a mean number of transactions per day from U(0, 4);
//! - each terminal has a location on the grid; a customer pays at the terminals within
//!   `'radius'` (5) of it, one drawn at random per transaction;
//! - on each day a customer makes Poisson(mean) transactions, at seconds of the day drawn from
//!   N(43 200, 20 000) (draws outside the day are dropped), of amounts drawn from N(mean, std)
//!   (a negative draw is replaced by U(0, 2 × mean)), rounded to cents;
//! - scenario 1: every transaction above 220 is a fraud;
//! - scenario 2: each day two terminals are compromised; their transactions of the next 28 days
//!   are frauds;
//! - scenario 3: each day three customers' credentials leak; for the next 14 days a third of
//!   their transactions are frauds with five times the amount. The handbook picks exactly a
//!   third of those transactions after simulating every day; a stream cannot look ahead, so each
//!   of them is picked with probability 1/3 instead. A later scenario's label wins, as in the
//!   handbook.
//!
//! Days are simulated one after another and each day's transactions are emitted in time order,
//! numbered from 0, so `tx_datetime` never decreases. Columns are the handbook's, in lower case:
//! `transaction_id`, `tx_datetime`, `customer_id`, `terminal_id`, `tx_amount`, `tx_time_seconds`,
//! `tx_time_days`, `tx_fraud` and `tx_fraud_scenario`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use streamsql_engine::connector::{OptionSpec, TableDef};
use streamsql_engine::time::timestamp_type;
use streamsql_engine::{Result, StreamError};

use crate::generate::{
    COMMON_OPTIONS, CommonOptions, GeneratorConnector, GeneratorKind, RowGenerator, SRC, start_time,
};

/// The connector.
pub type TransactionsConnector = GeneratorConnector<Transactions>;

const OPTIONS: &[OptionSpec] = &[
    COMMON_OPTIONS[0],
    COMMON_OPTIONS[1],
    COMMON_OPTIONS[2],
    OptionSpec {
        key: "start-time",
        required: false,
        roles: SRC,
        help: "midnight of the first simulated day (default '2018-04-01 00:00:00')",
    },
    OptionSpec { key: "customers", required: false, roles: SRC, help: "number of customers (default 5000)" },
    OptionSpec { key: "terminals", required: false, roles: SRC, help: "number of terminals (default 10000)" },
    OptionSpec {
        key: "radius",
        required: false,
        roles: SRC,
        help: "a customer pays at the terminals within this distance on the 100 × 100 grid (default 5)",
    },
    OptionSpec {
        key: "number-of-days",
        required: false,
        roles: SRC,
        help: "stop after simulating this many days (default: unbounded)",
    },
];

/// Every column the generator produces.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Int64, false),
        Field::new("tx_datetime", timestamp_type(), false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("terminal_id", DataType::Int64, false),
        Field::new("tx_amount", DataType::Float64, false),
        Field::new("tx_time_seconds", DataType::Int64, false),
        Field::new("tx_time_days", DataType::Int64, false),
        Field::new("tx_fraud", DataType::Int32, false),
        Field::new("tx_fraud_scenario", DataType::Int32, false),
    ]))
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionsOptions {
    pub common: CommonOptions,
    pub start_time_ms: i64,
    pub customers: u64,
    pub terminals: u64,
    pub radius: f64,
    pub number_of_days: Option<u64>,
}

impl Default for TransactionsOptions {
    fn default() -> Self {
        Self {
            common: CommonOptions { rows_per_second: 0, number_of_rows: None, seed: 42 },
            start_time_ms: 1_522_540_800_000, // 2018-04-01 00:00:00
            customers: 5000,
            terminals: 10_000,
            radius: 5.0,
            number_of_days: None,
        }
    }
}

impl TransactionsOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let d = Self::default();
        let positive = |key: &str, default: u64| -> Result<u64> {
            let value = opts.parse(key, default, "a positive integer")?;
            if value == 0 || value > 10_000_000 {
                return Err(StreamError::Config(format!(
                    "table '{}': option '{key}' must be between 1 and 10000000, got {value}",
                    table.name
                )));
            }
            Ok(value)
        };
        let radius: f64 = opts.parse("radius", d.radius, "a number")?;
        if !(radius.is_finite() && radius > 0.0) {
            return Err(StreamError::Config(format!(
                "table '{}': option 'radius' must be a positive number, got {radius}",
                table.name
            )));
        }
        let number_of_days = match opts.get("number-of-days") {
            None => None,
            Some(_) => Some(opts.parse("number-of-days", 0u64, "a non-negative integer")?),
        };
        Ok(Self {
            common: CommonOptions::parse(table)?,
            start_time_ms: start_time(table, d.start_time_ms, "2018-04-01 00:00:00")?,
            customers: positive("customers", d.customers)?,
            terminals: positive("terminals", d.terminals)?,
            radius,
            number_of_days,
        })
    }
}

struct Customer {
    mean_amount: f64,
    std_amount: f64,
    mean_per_day: f64,
    /// Terminals within the radius.
    terminals: Vec<u32>,
}

/// One simulated transaction before it is numbered.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transaction {
    second_of_day: i64,
    customer: u32,
    terminal: u32,
    amount: f64,
    fraud: i32,
    scenario: i32,
}

const SECONDS_PER_DAY: i64 = 86_400;

/// Generates the transactions day by day.
pub struct TransactionsGenerator {
    options: TransactionsOptions,
    rng: SmallRng,
    customers: Vec<Customer>,
    /// Day after which each compromised terminal is safe again.
    compromised_terminals: HashMap<u32, i64>,
    /// Day after which each compromised customer is safe again.
    compromised_customers: HashMap<u32, i64>,
    /// The day being emitted and its transactions in time order.
    day: i64,
    today: Vec<Transaction>,
    next_of_today: usize,
    next_id: u64,
}

impl TransactionsGenerator {
    pub fn new(options: TransactionsOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(options.common.seed);
        let mut customer_at = Vec::with_capacity(options.customers as usize);
        let mut customers = Vec::with_capacity(options.customers as usize);
        for _ in 0..options.customers {
            let x = rng.random_range(0.0..100.0);
            let y = rng.random_range(0.0..100.0);
            let mean_amount: f64 = rng.random_range(5.0..100.0);
            let mean_per_day = rng.random_range(0.0..4.0);
            customer_at.push((x, y));
            customers.push(Customer {
                mean_amount,
                std_amount: mean_amount / 2.0,
                mean_per_day,
                terminals: Vec::new(),
            });
        }
        let terminal_at: Vec<(f64, f64)> =
            (0..options.terminals).map(|_| (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0))).collect();
        // Terminals by grid cell of the radius's size: a customer's terminals are in its cell
        // and the eight around it.
        let cell = options.radius;
        let cells = (100.0 / cell).ceil() as i64 + 1;
        let cell_of = |(x, y): (f64, f64)| ((x / cell) as i64, (y / cell) as i64);
        let mut grid: HashMap<(i64, i64), Vec<u32>> = HashMap::new();
        for (t, &at) in terminal_at.iter().enumerate() {
            grid.entry(cell_of(at)).or_default().push(t as u32);
        }
        for (customer, &(x, y)) in customers.iter_mut().zip(&customer_at) {
            let (cx, cy) = cell_of((x, y));
            for gx in (cx - 1).max(0)..=(cx + 1).min(cells) {
                for gy in (cy - 1).max(0)..=(cy + 1).min(cells) {
                    for &t in grid.get(&(gx, gy)).into_iter().flatten() {
                        let (tx, ty) = terminal_at[t as usize];
                        if ((tx - x).powi(2) + (ty - y).powi(2)).sqrt() < options.radius {
                            customer.terminals.push(t);
                        }
                    }
                }
            }
            customer.terminals.sort_unstable();
        }
        Self {
            options,
            rng,
            customers,
            compromised_terminals: HashMap::new(),
            compromised_customers: HashMap::new(),
            day: -1,
            today: Vec::new(),
            next_of_today: 0,
            next_id: 0,
        }
    }

    /// A draw from N(mean, std) (Box–Muller).
    fn normal(&mut self, mean: f64, std: f64) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random();
        mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A draw from Poisson(lambda) (Knuth's method; lambda is below 4 here).
    fn poisson(&mut self, lambda: f64) -> u32 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p: f64 = self.rng.random();
        while p > limit {
            k += 1;
            p *= self.rng.random::<f64>();
        }
        k
    }

    /// Simulates the next day; `false` once `'number-of-days'` days are done.
    fn simulate_day(&mut self) -> bool {
        let day = self.day + 1;
        if self.options.number_of_days.is_some_and(|n| day >= n as i64) {
            return false;
        }
        self.day = day;
        for _ in 0..2 {
            let terminal = self.rng.random_range(0..self.options.terminals) as u32;
            self.compromised_terminals.insert(terminal, day + 28);
        }
        for _ in 0..3 {
            let customer = self.rng.random_range(0..self.options.customers) as u32;
            self.compromised_customers.insert(customer, day + 14);
        }
        self.compromised_terminals.retain(|_, until| *until > day);
        self.compromised_customers.retain(|_, until| *until > day);
        let mut today = std::mem::take(&mut self.today);
        today.clear();
        for c in 0..self.customers.len() {
            let (mean, std, per_day) = {
                let customer = &self.customers[c];
                (customer.mean_amount, customer.std_amount, customer.mean_per_day)
            };
            for _ in 0..self.poisson(per_day) {
                let second = self.normal(SECONDS_PER_DAY as f64 / 2.0, 20_000.0) as i64;
                if second <= 0 || second >= SECONDS_PER_DAY {
                    continue;
                }
                let mut amount = self.normal(mean, std);
                if amount < 0.0 {
                    amount = self.rng.random_range(0.0..mean * 2.0);
                }
                let terminals = &self.customers[c].terminals;
                if terminals.is_empty() {
                    continue;
                }
                let terminal = terminals[self.rng.random_range(0..terminals.len())];
                today.push(Transaction {
                    second_of_day: second,
                    customer: c as u32,
                    terminal,
                    amount: (amount * 100.0).round() / 100.0,
                    fraud: 0,
                    scenario: 0,
                });
            }
        }
        today.sort_by_key(|t| t.second_of_day);
        for tx in &mut today {
            if tx.amount > 220.0 {
                (tx.fraud, tx.scenario) = (1, 1);
            }
            if self.compromised_terminals.contains_key(&tx.terminal) {
                (tx.fraud, tx.scenario) = (1, 2);
            }
            if self.compromised_customers.contains_key(&tx.customer) && self.rng.random_range(0..3) == 0 {
                tx.amount = (tx.amount * 5.0 * 100.0).round() / 100.0;
                (tx.fraud, tx.scenario) = (1, 3);
            }
        }
        self.today = today;
        self.next_of_today = 0;
        true
    }
}

impl RowGenerator for TransactionsGenerator {
    fn rows_generated(&self) -> u64 {
        self.next_id
    }

    fn next_batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let rows = match self.options.common.number_of_rows {
            Some(n) if self.next_id >= n => return None,
            Some(n) => rows.min((n - self.next_id) as usize),
            None => rows,
        };
        let mut id = Int64Builder::with_capacity(rows);
        let mut datetime = TimestampMillisecondBuilder::with_capacity(rows);
        let mut customer = Int64Builder::with_capacity(rows);
        let mut terminal = Int64Builder::with_capacity(rows);
        let mut amount = Float64Builder::with_capacity(rows);
        let mut seconds = Int64Builder::with_capacity(rows);
        let mut days = Int64Builder::with_capacity(rows);
        let mut fraud = Int32Builder::with_capacity(rows);
        let mut scenario = Int32Builder::with_capacity(rows);
        let mut produced = 0;
        while produced < rows {
            if self.next_of_today == self.today.len() && !self.simulate_day() {
                break;
            }
            let Some(&tx) = self.today.get(self.next_of_today) else { continue };
            self.next_of_today += 1;
            let second = self.day * SECONDS_PER_DAY + tx.second_of_day;
            id.append_value(self.next_id as i64);
            datetime.append_value(self.options.start_time_ms + second * 1000);
            customer.append_value(tx.customer as i64);
            terminal.append_value(tx.terminal as i64);
            amount.append_value(tx.amount);
            seconds.append_value(second);
            days.append_value(self.day);
            fraud.append_value(tx.fraud);
            scenario.append_value(tx.scenario);
            self.next_id += 1;
            produced += 1;
        }
        if produced == 0 {
            return None;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(datetime.finish()),
            Arc::new(customer.finish()),
            Arc::new(terminal.finish()),
            Arc::new(amount.finish()),
            Arc::new(seconds.finish()),
            Arc::new(days.finish()),
            Arc::new(fraud.finish()),
            Arc::new(scenario.finish()),
        ];
        RecordBatch::try_new(transactions_schema(), columns).ok()
    }
}

/// `'connector' = 'transactions'`.
pub struct Transactions;

impl GeneratorKind for Transactions {
    const NAME: &'static str = "transactions";
    const DESCRIPTION: &'static str = "transactions generator";
    type Options = TransactionsOptions;
    type Generator = TransactionsGenerator;

    fn options() -> &'static [OptionSpec] {
        OPTIONS
    }

    fn schema() -> SchemaRef {
        transactions_schema()
    }

    fn parse(table: &TableDef) -> Result<TransactionsOptions> {
        TransactionsOptions::parse(table)
    }

    fn rows_per_second(options: &TransactionsOptions) -> u64 {
        options.common.rows_per_second
    }

    fn generator(options: TransactionsOptions) -> TransactionsGenerator {
        TransactionsGenerator::new(options)
    }
}

#[cfg(test)]
mod tests {
    use crate::generate::generate_all;
    use arrow::array::{AsArray, Float64Array, Int32Array, Int64Array};
    use arrow::datatypes::{Int32Type, Int64Type};

    use super::*;

    fn generate(options: TransactionsOptions, batch: usize) -> RecordBatch {
        generate_all(TransactionsGenerator::new(options), batch, &transactions_schema())
    }

    fn small(days: u64) -> TransactionsOptions {
        TransactionsOptions { customers: 500, terminals: 1000, number_of_days: Some(days), ..Default::default() }
    }

    #[test]
    fn rows_do_not_depend_on_batch_size_and_seed_changes_them() {
        let a = generate(small(5), 7);
        let b = generate(small(5), 4096);
        assert_eq!(a, b);
        let mut other = small(5);
        other.common.seed = 7;
        assert_ne!(generate(other, 4096).column(4), a.column(4));
    }

    #[test]
    fn follows_the_handbook_profile() {
        let options = TransactionsOptions { number_of_days: Some(60), ..Default::default() };
        let rows = generate(options, 8192);
        let n = rows.num_rows() as f64;
        // About 2 transactions per customer and day (mean of U(0, 4)), fewer the few drawn outside the day.
        let per_customer_day = n / 5000.0 / 60.0;
        assert!((1.7..2.3).contains(&per_customer_day), "{per_customer_day}");
        let time = rows.column(1).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert!(time.values().windows(2).all(|w| w[0] <= w[1]), "time order");
        let ids = rows.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert!(ids.values().iter().enumerate().all(|(i, &id)| id == i as i64));
        let fraud = rows.column(7).as_any().downcast_ref::<Int32Array>().unwrap();
        let scenario = rows.column(8).as_primitive::<Int32Type>();
        let amount = rows.column(4).as_any().downcast_ref::<Float64Array>().unwrap();
        let share = fraud.values().iter().filter(|&&f| f == 1).count() as f64 / n;
        // The handbook's simulation (its sizes) has about 0.8 % frauds.
        assert!((0.005..0.012).contains(&share), "fraud share {share}");
        for s in 1..=3 {
            assert!(scenario.values().contains(&s), "scenario {s} occurs");
        }
        for i in 0..rows.num_rows() {
            assert_eq!(fraud.value(i) == 1, scenario.value(i) > 0);
            if scenario.value(i) == 0 {
                assert!(amount.value(i) <= 220.0);
            }
            assert!(amount.value(i) >= 0.0);
        }
        let days = rows.column(6).as_primitive::<Int64Type>();
        assert_eq!(days.value(rows.num_rows() - 1), 59);
        let seconds = rows.column(5).as_primitive::<Int64Type>();
        assert!((0..rows.num_rows()).all(|i| seconds.value(i) / 86_400 == days.value(i)));
    }

    #[test]
    fn a_compromised_terminals_transactions_are_frauds() {
        let rows = generate(small(40), 4096);
        let terminal = rows.column(3).as_primitive::<Int64Type>();
        let days = rows.column(6).as_primitive::<Int64Type>();
        let scenario = rows.column(8).as_primitive::<Int32Type>();
        let mut first: HashMap<i64, i64> = HashMap::new();
        for i in 0..rows.num_rows() {
            if scenario.value(i) == 2 {
                first.entry(terminal.value(i)).or_insert(days.value(i));
            }
        }
        assert!(!first.is_empty());
        // On the day a terminal is first seen in scenario 2, every transaction at it is a fraud
        // (scenario 2, or 3, which wins).
        for i in 0..rows.num_rows() {
            if let Some(&start) = first.get(&terminal.value(i))
                && days.value(i) == start
            {
                assert!(scenario.value(i) >= 2, "row {i}");
            }
        }
    }

    #[test]
    fn number_of_rows_bounds_the_run() {
        let options = TransactionsOptions {
            common: CommonOptions { number_of_rows: Some(1234), ..small(1).common },
            ..small(100)
        };
        assert_eq!(generate(options, 100).num_rows(), 1234);
    }
}
