//! SQL types ↔ Arrow types, and the implicit conversions `INSERT INTO` allows. How types are
//! *named* lives in the engine ([`sql_name`]), so connectors can say it too.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::ast::{ArrayElemTypeDef, DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// The Arrow type of a column declared with `sql_type`, or why it is not supported.
pub fn arrow_type(sql_type: &SqlType) -> Result<DataType, String> {
    Ok(match sql_type {
        SqlType::String(_)
        | SqlType::Varchar(_)
        | SqlType::Text
        | SqlType::Char(_)
        | SqlType::CharVarying(_)
        | SqlType::CharacterVarying(_)
        | SqlType::Character(_) => DataType::Utf8,
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::SmallInt(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) => DataType::Int32,
        SqlType::BigInt(_) => DataType::Int64,
        SqlType::Float(_) | SqlType::Real => DataType::Float32,
        SqlType::Double(ExactNumberInfo::None) | SqlType::DoublePrecision => DataType::Float64,
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if !(1..=38).contains(&precision) || scale < 0 || scale as u64 > precision {
                return Err(format!(
                    "DECIMAL({precision}, {scale}) is out of range: precision 1..38, scale 0..precision"
                ));
            }
            DataType::Decimal128(precision as u8, scale as i8)
        }
        SqlType::Date => DataType::Date32,
        SqlType::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => match precision {
            None | Some(3) => DataType::Timestamp(TimeUnit::Millisecond, None),
            Some(p) => return Err(format!("TIMESTAMP({p}) is not supported yet; use TIMESTAMP(3) (milliseconds)")),
        },
        SqlType::Struct(fields, _) => {
            let mut out: Vec<Field> = Vec::with_capacity(fields.len());
            for field in fields {
                // Field names keep their case: JSON keys are matched as declared.
                let Some(name) = &field.field_name else {
                    return Err("every field of a ROW needs a name: ROW<name TYPE, ...>".into());
                };
                if out.iter().any(|f| f.name() == &name.value) {
                    return Err(format!("ROW field '{}' is declared twice", name.value));
                }
                out.push(Field::new(name.value.clone(), arrow_type(&field.field_type)?, true));
            }
            if out.is_empty() {
                return Err("a ROW needs at least one field".into());
            }
            DataType::Struct(Fields::from(out))
        }
        SqlType::Array(ArrayElemTypeDef::AngleBracket(element) | ArrayElemTypeDef::SquareBracket(element, None)) => {
            DataType::List(Arc::new(Field::new("element", arrow_type(element)?, true)))
        }
        SqlType::Map(key, value) => {
            let key = arrow_type(key)?;
            if key != DataType::Utf8 {
                return Err(format!("MAP keys must be STRING (JSON object keys), not {}", sql_name(&key)));
            }
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", arrow_type(value)?, true),
                ])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        other => {
            return Err(format!(
                "type {other} is not supported; use STRING, BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), DATE, \
                 TIMESTAMP(3), ROW<...>, ARRAY<...> or MAP<STRING, ...>"
            ));
        }
    })
}

pub use streamsql_engine::types::sql_name;

fn integer_digits(data_type: &DataType) -> Option<u8> {
    Some(match data_type {
        DataType::Int8 => 3,
        DataType::Int16 => 5,
        DataType::Int32 => 10,
        DataType::Int64 => 19,
        DataType::UInt8 => 3,
        DataType::UInt16 => 5,
        DataType::UInt32 => 10,
        DataType::UInt64 => 20,
        _ => return None,
    })
}

fn integer_width(data_type: &DataType) -> Option<u8> {
    Some(match data_type {
        DataType::Int8 => 8,
        DataType::Int16 => 16,
        DataType::Int32 => 32,
        DataType::Int64 => 64,
        _ => return None,
    })
}

/// Whether a query column of type `from` may be written into a sink column of type `to`
/// without losing information (the widening conversions Flink also applies implicitly).
pub fn implicitly_castable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || *from == Null {
        return true;
    }
    match (from, to) {
        (Utf8View | LargeUtf8, Utf8) => true,
        (Float32, Float64) => true,
        (Timestamp(_, _), Timestamp(TimeUnit::Millisecond, None)) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s2 >= s1 && (p2 - *s2 as u8) >= (p1 - *s1 as u8),
        (Decimal128(..), Float64) => true,
        // Arrays whose elements widen (an ARRAY column's element field is named "element",
        // DataFusion's array results name it "item").
        (List(a), List(b)) => {
            (b.is_nullable() || !a.is_nullable()) && implicitly_castable(a.data_type(), b.data_type())
        }
        (f, Decimal128(p, s)) if integer_digits(f).is_some() => integer_digits(f).is_some_and(|d| p - *s as u8 >= d),
        (f, Float32 | Float64) if integer_digits(f).is_some() => true,
        (f, t) if integer_width(f).is_some() && integer_width(t).is_some() => integer_width(f) <= integer_width(t),
        _ => false,
    }
}
