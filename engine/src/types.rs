//! How Arrow types are written in SQL, for messages from any layer.

use arrow::datatypes::{DataType, TimeUnit};

/// How a type is written in SQL, for messages.
pub fn sql_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "STRING".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            match tz {
                None => format!("TIMESTAMP({p})"),
                Some(_) => format!("TIMESTAMP_LTZ({p})"),
            }
        }
        DataType::Null => "NULL".into(),
        DataType::Struct(fields) => {
            let fields: Vec<String> =
                fields.iter().map(|f| format!("{} {}", f.name(), sql_name(f.data_type()))).collect();
            format!("ROW<{}>", fields.join(", "))
        }
        DataType::List(element) | DataType::LargeList(element) => format!("ARRAY<{}>", sql_name(element.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", sql_name(kv[0].data_type()), sql_name(kv[1].data_type()))
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}
