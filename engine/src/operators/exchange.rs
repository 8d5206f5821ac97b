//! Hash exchange: splits batches among aggregation instances by their GROUP BY keys, so that all
//! rows of one group meet in one instance.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;

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
            random_state: RandomState::default(),
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
        // Middle bits: hash tables downstream use the low bits for buckets and the top bits
        // for tags, so routing on either would cluster each instance's table.
        for (row, hash) in self.hashes.iter().enumerate() {
            self.indices[((hash >> 24) % self.partitions as u64) as usize].push(row as u32);
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
