//! Filters and projections, evaluated with DataFusion physical expressions and fused into one
//! chain per task (as Flink chains operators).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, StreamError};

/// One stateless step.
#[derive(Debug, Clone)]
pub enum StatelessOp {
    /// Keeps rows where the predicate is true (null counts as false).
    Filter(Arc<dyn PhysicalExpr>),
    /// Computes new visible columns; hidden trailing columns are carried over unchanged.
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        /// The visible output schema (without hidden columns).
        schema: SchemaRef,
    },
}

/// A fused run of [`StatelessOp`]s over batches that end in `hidden` hidden columns.
#[derive(Debug, Clone, Default)]
pub struct StatelessChain {
    ops: Vec<StatelessOp>,
    hidden: usize,
    /// Full output schemas (visible + hidden) of each projection, computed once.
    project_schemas: Vec<Option<SchemaRef>>,
}

impl StatelessChain {
    /// A chain over batches whose last `hidden_fields.len()` columns are hidden.
    pub fn new(ops: Vec<StatelessOp>, hidden_fields: &[Field]) -> Self {
        let project_schemas = ops
            .iter()
            .map(|op| match op {
                StatelessOp::Filter(_) => None,
                StatelessOp::Project { schema, .. } => {
                    let mut fields: Vec<Field> =
                        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
                    fields.extend(hidden_fields.iter().cloned());
                    Some(Arc::new(Schema::new(fields)))
                }
            })
            .collect();
        Self { ops, hidden: hidden_fields.len(), project_schemas }
    }

    /// The operators, for display.
    pub fn ops(&self) -> &[StatelessOp] {
        &self.ops
    }

    /// Runs the chain; `None` when every row was filtered out.
    pub fn apply(&self, mut batch: RecordBatch) -> Result<Option<RecordBatch>> {
        for (op, project_schema) in self.ops.iter().zip(&self.project_schemas) {
            if batch.num_rows() == 0 {
                return Ok(None);
            }
            batch = match op {
                StatelessOp::Filter(predicate) => {
                    let mask = evaluate_predicate(predicate, &batch)?;
                    if mask.true_count() == batch.num_rows() { batch } else { filter_record_batch(&batch, &mask)? }
                }
                StatelessOp::Project { exprs, .. } => {
                    let schema = project_schema
                        .clone()
                        .ok_or_else(|| StreamError::Internal("projection without schema".into()))?;
                    let n = batch.num_rows();
                    let mut columns = exprs
                        .iter()
                        .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                        .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
                    let first_hidden = batch.num_columns() - self.hidden;
                    columns.extend(batch.columns()[first_hidden..].iter().cloned());
                    RecordBatch::try_new_with_options(
                        schema,
                        columns,
                        &RecordBatchOptions::new().with_row_count(Some(n)),
                    )?
                }
            };
        }
        Ok((batch.num_rows() > 0).then_some(batch))
    }
}

/// Evaluates a boolean expression to a filter mask where null means false.
pub fn evaluate_predicate(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<BooleanArray> {
    let values = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = values.as_boolean_opt().ok_or_else(|| {
        StreamError::Internal(format!("predicate produced {} instead of BOOLEAN", values.data_type()))
    })?;
    Ok(if mask.null_count() > 0 { prep_null_mask_filter(mask) } else { mask.clone() })
}
