//! Flink built-ins we do not support yet, as functions that fail the plan with a message naming
//! them. Without these, a name DataFusion also has (with another meaning) would silently run
//! DataFusion's, and a name it lacks would get DataFusion's "Invalid function" with a guess.

use arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use super::registry::{FLINK_FUNCTIONS, FlinkFunction, Support};

pub(super) fn stubs() -> Vec<ScalarUDF> {
    FLINK_FUNCTIONS
        .iter()
        .filter(|f| f.support == Support::NotYet)
        .map(|f| {
            ScalarUDF::new_from_impl(NotYet {
                name: f.name.to_lowercase(),
                message: message(f),
                signature: Signature::one_of(
                    vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                    Volatility::Volatile,
                ),
            })
        })
        .collect()
}

/// What a user calling an unsupported Flink function is told.
pub fn message(function: &FlinkFunction) -> String {
    let why = if function.note.is_empty() { String::new() } else { format!(": {}", function.note) };
    format!(
        "{} is not supported yet{why}. It is a Flink built-in function streamsql does not implement; \
         docs/FUNCTIONS.md lists the ones it does",
        function.name
    )
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NotYet {
    name: String,
    message: String,
    signature: Signature,
}

impl ScalarUDFImpl for NotYet {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("{}", self.message)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        plan_err!("{}", self.message)
    }
}
