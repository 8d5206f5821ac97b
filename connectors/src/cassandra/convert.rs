//! Arrow values → CQL values.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMillisecondType,
};
use arrow::record_batch::RecordBatch;
use scylla::value::{CqlDate, CqlDecimal, CqlTimestamp, CqlValue};
use streamsql_engine::{Result, StreamError};

/// The CQL value of one cell (`None` for NULL).
fn cell(column: &ArrayRef, row: usize) -> Result<Option<CqlValue>> {
    if column.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match column.data_type() {
        DataType::Utf8 => CqlValue::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::Boolean => CqlValue::Boolean(column.as_boolean().value(row)),
        DataType::Int8 => CqlValue::TinyInt(column.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => CqlValue::SmallInt(column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => CqlValue::Int(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => CqlValue::BigInt(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => CqlValue::Float(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => CqlValue::Double(column.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => {
            let unscaled = column.as_primitive::<Decimal128Type>().value(row);
            CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(
                unscaled.to_be_bytes().to_vec(),
                *scale as i32,
            ))
        }
        // CQL dates count days from 2^31 days before the epoch.
        DataType::Date32 => {
            CqlValue::Date(CqlDate((column.as_primitive::<Date32Type>().value(row) as i64 + (1i64 << 31)) as u32))
        }
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            CqlValue::Timestamp(CqlTimestamp(column.as_primitive::<TimestampMillisecondType>().value(row)))
        }
        other => return Err(StreamError::Internal(format!("no CQL mapping for {other}"))),
    }))
}

/// `value` as the Cassandra column's type `cql` (see [`super::schema::writable`]): integers and
/// floats widened, text as ascii (refused unless it is ASCII).
fn widen(value: CqlValue, cql: &str) -> Result<CqlValue> {
    Ok(match (value, cql) {
        (CqlValue::TinyInt(v), "smallint") => CqlValue::SmallInt(i16::from(v)),
        (CqlValue::TinyInt(v), "int") => CqlValue::Int(i32::from(v)),
        (CqlValue::TinyInt(v), "bigint") => CqlValue::BigInt(i64::from(v)),
        (CqlValue::SmallInt(v), "int") => CqlValue::Int(i32::from(v)),
        (CqlValue::SmallInt(v), "bigint") => CqlValue::BigInt(i64::from(v)),
        (CqlValue::Int(v), "bigint") => CqlValue::BigInt(i64::from(v)),
        (CqlValue::Float(v), "double") => CqlValue::Double(f64::from(v)),
        (CqlValue::Text(s), "ascii") if s.is_ascii() => CqlValue::Ascii(s),
        (CqlValue::Text(s), "ascii") => {
            return Err(StreamError::Data(format!("the value '{s}' is not ASCII, and its Cassandra column is ascii")));
        }
        (value, _) => value,
    })
}

/// Every row of `batch` as bound values in the types of the Cassandra columns they go to
/// (`cql`, one per column), optionally followed by the TTL.
pub fn rows(batch: &RecordBatch, cql: &[String], ttl: Option<u32>) -> Result<Vec<Vec<Option<CqlValue>>>> {
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut values = Vec::with_capacity(batch.num_columns() + 1);
        for (column, cql) in batch.columns().iter().zip(cql) {
            values.push(cell(column, row)?.map(|v| widen(v, cql)).transpose()?);
        }
        if let Some(ttl) = ttl {
            values.push(Some(CqlValue::Int(ttl as i32)));
        }
        rows.push(values);
    }
    Ok(rows)
}
