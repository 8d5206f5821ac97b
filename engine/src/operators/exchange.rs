//! Hash exchange: splits batches among aggregation instances by their GROUP BY keys, so that all
//! rows of one group meet in one instance.
//!
//! Rows go to instances through a fixed number of **key groups**, as in Flink, so that state
//! kept per key group can later be restored at another parallelism:
//!
//! ```text
//!  hash     = DataFusion create_hashes over the key columns, with the fixed seed KEY_HASH_SEED
//!  group    = (hash >> 24) mod KEY_GROUPS          (middle bits: see below)
//!  instance = group × parallelism / KEY_GROUPS     (contiguous ranges of groups per instance)
//! ```
//!
//! The seed is a constant, so a key lands in the same group in every process and after every
//! restart of the same build (DataFusion's hashing is not promised stable across its releases;
//! a checkpoint format that outlives an upgrade must record the groups, not recompute them).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;

/// Key groups: the unit of keyed state. More than any parallelism we allow (256), so every
/// instance owns at least 128 of them.
pub const KEY_GROUPS: u64 = 32_768;

/// Seed of the routing hash (foldhash, as DataFusion hashes): fixed, so routing is the same in
/// every process. Different from the seed DataFusion's hash tables use, so an instance's rows do
/// not cluster in its tables.
pub const KEY_HASH_SEED: u64 = 0x5354_5245_414d_5351;

/// The key group of a row's key hash.
pub fn key_group(hash: u64) -> u64 {
    (hash >> 24) % KEY_GROUPS
}

/// The instance (of `parallelism`) that owns `group`.
pub fn instance_of(group: u64, parallelism: usize) -> usize {
    (group * parallelism as u64 / KEY_GROUPS) as usize
}

/// Which rows of keyed state with key columns `keys` (`rows` rows) instance `instance` of
/// `parallelism` owns: those whose keys hash into its key groups, as [`HashRouter`] routes
/// them (without keys, instance 0 owns every row). For restores at another parallelism.
pub fn owned_rows(keys: &[ArrayRef], rows: usize, instance: usize, parallelism: usize) -> Result<Vec<bool>> {
    if keys.is_empty() || parallelism <= 1 {
        return Ok(vec![instance == 0; rows]);
    }
    let mut hashes = vec![0; rows];
    create_hashes(keys, &RandomState::with_seed(KEY_HASH_SEED), &mut hashes)?;
    Ok(hashes.iter().map(|h| instance_of(key_group(*h), parallelism) == instance).collect())
}

/// [`owned_rows`] of `batch`, its keys the values of `keys` (as the exchange hashes them,
/// before any cast), as a filter.
pub fn owned_filter(
    batch: &RecordBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    instance: usize,
    parallelism: usize,
) -> Result<BooleanArray> {
    let keys = keys
        .iter()
        .map(|e| e.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(BooleanArray::from(owned_rows(&keys, batch.num_rows(), instance, parallelism)?))
}

/// Routes rows to `partitions` outputs by hash of `keys`; without keys every row goes to 0.
#[derive(Debug)]
pub struct HashRouter {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    partitions: usize,
    random_state: RandomState,
    hashes: Vec<u64>,
    indices: Vec<Vec<u32>>,
}

impl HashRouter {
    pub fn new(keys: Vec<Arc<dyn PhysicalExpr>>, partitions: usize) -> Self {
        Self {
            keys,
            partitions: partitions.max(1),
            random_state: RandomState::with_seed(KEY_HASH_SEED),
            hashes: Vec::new(),
            indices: vec![Vec::new(); partitions.max(1)],
        }
    }

    /// Splits `batch` into `(partition, rows)` pieces, skipping empty ones.
    pub fn route(&mut self, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        if self.partitions == 1 || self.keys.is_empty() {
            return Ok(vec![(0, batch)]);
        }
        let n = batch.num_rows();
        let keys = self
            .keys
            .iter()
            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        self.hashes.clear();
        self.hashes.resize(n, 0);
        create_hashes(&keys, &self.random_state, &mut self.hashes)?;
        for list in &mut self.indices {
            list.clear();
        }
        for (row, hash) in self.hashes.iter().enumerate() {
            self.indices[instance_of(key_group(*hash), self.partitions)].push(row as u32);
        }
        let mut out = Vec::new();
        for (partition, list) in self.indices.iter_mut().enumerate() {
            if list.is_empty() {
                continue;
            }
            let piece = if list.len() == n {
                batch.clone()
            } else {
                let idx = UInt32Array::from(std::mem::take(list));
                take_record_batch(&batch, &idx)?
            };
            out.push((partition, piece));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    fn batch() -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, false)]));
        let keys: StringArray = (0..1000).map(|i| (i % 7 != 0).then(|| format!("key-{}", i % 97))).collect();
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(Int64Array::from_iter_values(0..1000))])
            .expect("batch")
    }

    fn routed(partitions: usize) -> Vec<(String, usize)> {
        let mut router = HashRouter::new(vec![Arc::new(Column::new("k", 0))], partitions);
        let mut rows = Vec::new();
        for (partition, piece) in router.route(batch()).expect("routes") {
            let keys = piece.column(0).as_any().downcast_ref::<StringArray>().expect("strings");
            rows.extend(keys.iter().map(|k| (k.unwrap_or("NULL").to_string(), partition)));
        }
        rows.sort();
        rows.dedup();
        rows
    }

    #[test]
    fn a_key_always_goes_to_the_same_instance() {
        let rows = routed(4);
        let mut keys: Vec<&String> = rows.iter().map(|(k, _)| k).collect();
        let all = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), all, "each key reaches exactly one instance");
        let used: std::collections::BTreeSet<usize> = rows.iter().map(|(_, p)| *p).collect();
        assert_eq!(used.len(), 4, "97 keys spread over all 4 instances");
        assert_eq!(routed(4), rows, "routing is deterministic");
    }

    #[test]
    fn key_groups_are_split_into_contiguous_ranges() {
        assert_eq!(instance_of(0, 4), 0);
        assert_eq!(instance_of(KEY_GROUPS / 4 - 1, 4), 0);
        assert_eq!(instance_of(KEY_GROUPS / 4, 4), 1);
        assert_eq!(instance_of(KEY_GROUPS - 1, 4), 3);
        assert_eq!(instance_of(KEY_GROUPS - 1, 256), 255);
        // Rescaling 2 → 4 splits each instance's groups, it never mixes them.
        for group in 0..KEY_GROUPS {
            assert_eq!(instance_of(group, 4) / 2, instance_of(group, 2));
        }
    }

    #[test]
    fn the_routing_hash_is_fixed() {
        // The same key hashes alike in every process: a regression guard on the seed.
        let state = RandomState::with_seed(KEY_HASH_SEED);
        let other = RandomState::with_seed(KEY_HASH_SEED);
        let keys: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "b", "c"]))];
        let (mut one, mut two) = (vec![0; 3], vec![0; 3]);
        create_hashes(&keys, &state, &mut one).expect("hashes");
        create_hashes(&keys, &other, &mut two).expect("hashes");
        assert_eq!(one, two);
    }
}
