//! `SHA224`, `SHA256`, `SHA384`, `SHA512` and `SHA2(string, bits)` as lower-case hex text, as
//! in Flink (DataFusion's `sha256` and friends give BYTES).

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use sha2::Digest;

use super::args::{Arrays, Param, array, coerce};

pub(super) fn functions() -> Vec<ScalarUDF> {
    let f = |name: &'static str, bits: Option<u16>| {
        ScalarUDF::new_from_impl(Sha { name, bits, signature: Signature::user_defined(Volatility::Immutable) })
    };
    vec![
        f("sha224", Some(224)),
        f("sha256", Some(256)),
        f("sha384", Some(384)),
        f("sha512", Some(512)),
        f("sha2", None),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sha {
    name: &'static str,
    /// `None` for SHA2, which takes the length as its second argument.
    bits: Option<u16>,
    signature: Signature,
}

fn hex_digest(bits: i64, text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let digest: Vec<u8> = match bits {
        224 => sha2::Sha224::digest(bytes).to_vec(),
        256 => sha2::Sha256::digest(bytes).to_vec(),
        384 => sha2::Sha384::digest(bytes).to_vec(),
        512 => sha2::Sha512::digest(bytes).to_vec(),
        _ => return None,
    };
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

impl ScalarUDFImpl for Sha {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let form: &[Param] = if self.bits.is_some() { &[Param::Str] } else { &[Param::Str, Param::Int] };
        coerce(&self.name.to_uppercase(), arg_types, &[form])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let texts = arrays.str(0)?;
        let mut out = StringBuilder::with_capacity(arrays.rows(), 0);
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let bits = match self.bits {
                Some(bits) => i64::from(bits),
                None => arrays.int(1)?.value(row),
            };
            // SHA2 with a length other than 224, 256, 384 or 512 is NULL, as in Flink.
            out.append_option(hex_digest(bits, texts.value(row)));
        }
        array(out.finish())
    }
}
