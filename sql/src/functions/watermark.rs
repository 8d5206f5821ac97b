//! `CURRENT_WATERMARK(rowtime)`: the watermark a row is judged by.
//!
//! Each row a source reads carries, in the hidden `_wm` column, the watermark of its partition
//! before it (see `streamsql_engine::operators::watermark`): the one windows and joins use to
//! call the row late. `CURRENT_WATERMARK(ts)` is that value as a `TIMESTAMP(3)`, or NULL while
//! there is none yet (Flink's "no watermark available"), so `WHERE CURRENT_WATERMARK(ts) IS NULL
//! OR ts > CURRENT_WATERMARK(ts)` keeps exactly the rows that are not late, and the rows a
//! window would drop can be routed elsewhere.
//!
//! The planner resolves the call to [`CurrentWatermark`], which reads `_wm` from the batch; the
//! planner allows it only where rows still carry their own watermark (a table's rows, before
//! aggregations and joins) and only over the event-time column. Evaluated anywhere else (a
//! batch query) the function refuses.

use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::{Result, exec_err, internal_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_expr::PhysicalExpr;
use streamsql_engine::time::{WATERMARK_MIN, WM_COLUMN};

/// The function's name as planned.
pub const NAME: &str = "current_watermark";

pub(super) fn function() -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentWatermarkFunction { signature: Signature::any(1, Volatility::Volatile) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentWatermarkFunction {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentWatermarkFunction {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Timestamp(TimeUnit::Millisecond, None)] => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
            _ => datafusion::common::plan_err!(
                "CURRENT_WATERMARK takes the table's event-time column (TIMESTAMP(3), declared with WATERMARK FOR)"
            ),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("CURRENT_WATERMARK has a value only in a streaming query, on the rows of a table with a watermark")
    }
}

/// `CURRENT_WATERMARK(...)` as evaluated on a batch that carries `_wm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CurrentWatermark;

impl fmt::Display for CurrentWatermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CURRENT_WATERMARK()")
    }
}

impl PhysicalExpr for CurrentWatermark {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(NAME, DataType::Timestamp(TimeUnit::Millisecond, None), true)))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let Ok(at) = batch.schema().index_of(WM_COLUMN) else {
            return internal_err!("CURRENT_WATERMARK evaluated on rows without their watermark");
        };
        let Some(watermarks) = batch.column(at).as_primitive_opt::<Int64Type>() else {
            return internal_err!("{WM_COLUMN} is not BIGINT");
        };
        let values: TimestampMillisecondArray = watermarks.iter().map(|w| w.filter(|w| *w != WATERMARK_MIN)).collect();
        debug_assert_eq!(values.len(), batch.num_rows());
        Ok(ColumnarValue::Array(Arc::new(values)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        Vec::new()
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(self)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CURRENT_WATERMARK()")
    }
}
