//! Every Flink built-in function (Flink 1.20, "System (Built-in) Functions"), with how streamsql
//! supports it. `docs/FUNCTIONS.md` is generated from this table, unsupported names are refused
//! at plan time from it, and the differential test checks every supported name against Flink's
//! documented examples.
//!
//! Operators (`=`, `||`, `LIKE`, `IS JSON`, `CASE`, `CAST`, ...) are not listed: they are syntax,
//! not functions, and DataFusion plans them.

/// How a Flink built-in is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented in `functions/` with Flink's semantics, shadowing any DataFusion function of
    /// the same name.
    Flink,
    /// DataFusion's function of the same name behaves as Flink's.
    DataFusion,
    /// Not supported yet: calling it is a plan-time error naming it.
    NotYet,
}

/// Whether a function is called once per row or once per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scalar,
    Aggregate,
    /// Only meaningful with `OVER (...)`.
    Window,
}

/// The sections of Flink's function documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Arithmetic,
    String,
    Temporal,
    Conditional,
    Conversion,
    Collection,
    Json,
    Hash,
    Grouping,
    Aggregate,
    Window,
}

impl Category {
    /// Every category, in the order of the documentation.
    pub const ALL: [Category; 11] = [
        Category::Arithmetic,
        Category::String,
        Category::Temporal,
        Category::Conditional,
        Category::Conversion,
        Category::Collection,
        Category::Json,
        Category::Hash,
        Category::Grouping,
        Category::Aggregate,
        Category::Window,
    ];

    /// The section title.
    pub fn title(self) -> &'static str {
        match self {
            Category::Arithmetic => "Arithmetic functions",
            Category::String => "String functions",
            Category::Temporal => "Temporal functions",
            Category::Conditional => "Conditional functions",
            Category::Conversion => "Type conversion functions",
            Category::Collection => "Collection functions",
            Category::Json => "JSON functions",
            Category::Hash => "Hash functions",
            Category::Grouping => "Grouping functions",
            Category::Aggregate => "Aggregate functions",
            Category::Window => "Window (OVER) functions",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Category::Aggregate => Kind::Aggregate,
            Category::Window => Kind::Window,
            _ => Kind::Scalar,
        }
    }
}

/// One Flink built-in function.
#[derive(Debug, Clone, Copy)]
pub struct FlinkFunction {
    /// The name as Flink documents it (upper case).
    pub name: &'static str,
    /// How it is called.
    pub syntax: &'static str,
    pub category: Category,
    pub support: Support,
    /// What differs from Flink, or why it is not supported yet (shown to users).
    pub note: &'static str,
}

impl FlinkFunction {
    pub fn kind(&self) -> Kind {
        self.category.kind()
    }

    /// Whether a query may call it.
    pub fn is_supported(&self) -> bool {
        self.support != Support::NotYet
    }
}

/// The entry for `name` (any case).
pub fn find(name: &str) -> Option<&'static FlinkFunction> {
    FLINK_FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

const fn f(
    category: Category,
    name: &'static str,
    syntax: &'static str,
    support: Support,
    note: &'static str,
) -> FlinkFunction {
    FlinkFunction { name, syntax, category, support, note }
}

const TOP_N: &str = "per window (PARTITION BY window_start, window_end, ... over window results: window Top-N), or ORDER BY the event time with WHERE rn <= N above it (first rows per key, deduplication)";
const PER_WINDOW: &str = "within windows only: PARTITION BY window_start, window_end, ... over window results";
const NO_MAP: &str = "MAP values are not supported yet";
const UTC: &str = "the session time zone is UTC";
const SKIP_NULLS: &str =
    "Flink's skips NULL values, DataFusion's keeps them, and the engine's aggregation has no IGNORE NULLS yet";
const CLOCK: &str = "evaluated for each row, in UTC; gives TIMESTAMP(3) or DATE";

/// Flink's built-in functions, by documentation section.
pub static FLINK_FUNCTIONS: &[FlinkFunction] = {
    use Category::{
        Aggregate, Arithmetic, Collection, Conditional, Conversion, Grouping, Hash, Json, Temporal, Window,
    };
    use Support::{DataFusion, Flink, NotYet};
    &[
        // Arithmetic
        f(Arithmetic, "ABS", "ABS(numeric)", DataFusion, ""),
        f(
            Arithmetic,
            "MOD",
            "MOD(numeric1, numeric2)",
            Flink,
            "the remainder has the sign of numeric1; MOD by zero fails",
        ),
        f(Arithmetic, "SQRT", "SQRT(numeric)", DataFusion, ""),
        f(Arithmetic, "LN", "LN(numeric)", DataFusion, ""),
        f(Arithmetic, "LOG10", "LOG10(numeric)", DataFusion, ""),
        f(Arithmetic, "LOG2", "LOG2(numeric)", DataFusion, ""),
        f(
            Arithmetic,
            "LOG",
            "LOG(numeric) / LOG(base, numeric)",
            Flink,
            "LOG(x) is the natural logarithm (DataFusion's is base 10)",
        ),
        f(Arithmetic, "EXP", "EXP(numeric)", DataFusion, ""),
        f(Arithmetic, "POWER", "POWER(numeric1, numeric2)", Flink, "always DOUBLE"),
        f(Arithmetic, "CEIL", "CEIL(numeric)", DataFusion, "CEIL(timepoint TO unit) is not supported yet"),
        f(Arithmetic, "CEILING", "CEILING(numeric)", Flink, "CEILING(timepoint TO unit) is not supported yet"),
        f(Arithmetic, "FLOOR", "FLOOR(numeric)", DataFusion, "FLOOR(timepoint TO unit) is not supported yet"),
        f(Arithmetic, "SIN", "SIN(numeric)", DataFusion, ""),
        f(Arithmetic, "SINH", "SINH(numeric)", DataFusion, ""),
        f(Arithmetic, "COS", "COS(numeric)", DataFusion, ""),
        f(Arithmetic, "COSH", "COSH(numeric)", DataFusion, ""),
        f(Arithmetic, "TAN", "TAN(numeric)", DataFusion, ""),
        f(Arithmetic, "TANH", "TANH(numeric)", DataFusion, ""),
        f(Arithmetic, "COT", "COT(numeric)", DataFusion, ""),
        f(Arithmetic, "ASIN", "ASIN(numeric)", DataFusion, ""),
        f(Arithmetic, "ACOS", "ACOS(numeric)", DataFusion, ""),
        f(Arithmetic, "ATAN", "ATAN(numeric)", DataFusion, ""),
        f(Arithmetic, "ATAN2", "ATAN2(numeric1, numeric2)", DataFusion, ""),
        f(Arithmetic, "DEGREES", "DEGREES(numeric)", DataFusion, ""),
        f(Arithmetic, "RADIANS", "RADIANS(numeric)", DataFusion, ""),
        f(Arithmetic, "SIGN", "SIGN(numeric)", Flink, ""),
        f(
            Arithmetic,
            "ROUND",
            "ROUND(numeric[, integer])",
            Flink,
            "rounds half up the decimal a DOUBLE prints as, as Flink does (DataFusion's rounds the binary value: 125.315 to 125.31)",
        ),
        f(Arithmetic, "PI", "PI()", DataFusion, ""),
        f(Arithmetic, "E", "E()", Flink, ""),
        f(Arithmetic, "RAND", "RAND([integer])", NotYet, "random numbers are not supported yet"),
        f(
            Arithmetic,
            "RAND_INTEGER",
            "RAND_INTEGER([integer1, ] integer2)",
            NotYet,
            "random numbers are not supported yet",
        ),
        f(Arithmetic, "UUID", "UUID()", DataFusion, ""),
        f(Arithmetic, "BIN", "BIN(integer)", Flink, ""),
        f(Arithmetic, "HEX", "HEX(numeric or string)", Flink, ""),
        f(Arithmetic, "UNHEX", "UNHEX(string)", NotYet, "BYTES values are not supported yet"),
        f(Arithmetic, "TRUNCATE", "TRUNCATE(numeric[, integer])", Flink, ""),
        // String
        f(Category::String, "CHAR_LENGTH", "CHAR_LENGTH(string)", DataFusion, ""),
        f(Category::String, "CHARACTER_LENGTH", "CHARACTER_LENGTH(string)", DataFusion, ""),
        f(Category::String, "UPPER", "UPPER(string)", DataFusion, ""),
        f(Category::String, "LOWER", "LOWER(string)", DataFusion, ""),
        f(Category::String, "POSITION", "POSITION(string1 IN string2)", DataFusion, ""),
        f(Category::String, "TRIM", "TRIM([ BOTH | LEADING | TRAILING ] [string1] FROM string2)", DataFusion, ""),
        f(Category::String, "LTRIM", "LTRIM(string)", DataFusion, ""),
        f(Category::String, "RTRIM", "RTRIM(string)", DataFusion, ""),
        f(Category::String, "BTRIM", "BTRIM(string[, string2])", DataFusion, ""),
        f(Category::String, "REPEAT", "REPEAT(string, integer)", DataFusion, ""),
        f(
            Category::String,
            "REGEXP_REPLACE",
            "REGEXP_REPLACE(string1, string2, string3)",
            Flink,
            "replaces every match; Rust regex syntax (no look-around or back-references)",
        ),
        f(Category::String, "OVERLAY", "OVERLAY(string1 PLACING string2 FROM integer1 [FOR integer2])", DataFusion, ""),
        f(Category::String, "SUBSTRING", "SUBSTRING(string FROM integer1 [FOR integer2])", Flink, ""),
        f(Category::String, "SUBSTR", "SUBSTR(string, integer1[, integer2])", Flink, ""),
        f(Category::String, "REPLACE", "REPLACE(string1, string2, string3)", DataFusion, ""),
        f(
            Category::String,
            "REGEXP_EXTRACT",
            "REGEXP_EXTRACT(string1, string2[, integer])",
            Flink,
            "Rust regex syntax (no look-around or back-references)",
        ),
        f(
            Category::String,
            "REGEXP",
            "REGEXP(string1, string2)",
            Flink,
            "Rust regex syntax (no look-around or back-references)",
        ),
        f(Category::String, "REGEXP_COUNT", "REGEXP_COUNT(string1, string2)", NotYet, ""),
        f(Category::String, "REGEXP_EXTRACT_ALL", "REGEXP_EXTRACT_ALL(string1, string2[, integer])", NotYet, ""),
        f(Category::String, "REGEXP_INSTR", "REGEXP_INSTR(string1, string2)", NotYet, ""),
        f(Category::String, "REGEXP_SUBSTR", "REGEXP_SUBSTR(string1, string2)", NotYet, ""),
        f(Category::String, "INITCAP", "INITCAP(string)", DataFusion, ""),
        f(
            Category::String,
            "CONCAT",
            "CONCAT(string1, string2, ...)",
            Flink,
            "NULL if any argument is NULL (DataFusion's skips NULLs)",
        ),
        f(Category::String, "CONCAT_WS", "CONCAT_WS(string1, string2, string3, ...)", DataFusion, ""),
        f(Category::String, "LPAD", "LPAD(string1, integer, string2)", Flink, ""),
        f(Category::String, "RPAD", "RPAD(string1, integer, string2)", Flink, ""),
        f(Category::String, "FROM_BASE64", "FROM_BASE64(string)", Flink, ""),
        f(Category::String, "TO_BASE64", "TO_BASE64(string)", Flink, ""),
        f(Category::String, "ASCII", "ASCII(string)", DataFusion, ""),
        f(Category::String, "CHR", "CHR(integer)", Flink, ""),
        f(Category::String, "DECODE", "DECODE(binary, string)", NotYet, "BYTES values are not supported yet"),
        f(Category::String, "ENCODE", "ENCODE(string1, string2)", NotYet, "BYTES values are not supported yet"),
        f(Category::String, "INSTR", "INSTR(string1, string2)", DataFusion, ""),
        f(Category::String, "LEFT", "LEFT(string, integer)", Flink, ""),
        f(Category::String, "RIGHT", "RIGHT(string, integer)", Flink, ""),
        f(Category::String, "LOCATE", "LOCATE(string1, string2[, integer])", Flink, ""),
        f(Category::String, "PARSE_URL", "PARSE_URL(string1, string2[, string3])", NotYet, ""),
        f(Category::String, "URL_DECODE", "URL_DECODE(string)", Flink, "NULL for a broken escape"),
        f(Category::String, "URL_ENCODE", "URL_ENCODE(string)", Flink, ""),
        f(Category::String, "PRINTF", "PRINTF(format[, obj]*)", NotYet, ""),
        f(Category::String, "REVERSE", "REVERSE(string)", DataFusion, ""),
        f(Category::String, "SPLIT_INDEX", "SPLIT_INDEX(string1, string2, integer1)", Flink, ""),
        f(Category::String, "STR_TO_MAP", "STR_TO_MAP(string1[, string2, string3])", NotYet, NO_MAP),
        f(Category::String, "TRANSLATE", "TRANSLATE(expr, fromStr, toStr)", DataFusion, ""),
        f(Category::String, "ELT", "ELT(index, expr[, exprs]*)", Flink, ""),
        f(Category::String, "STARTSWITH", "STARTSWITH(expr, startExpr)", Flink, ""),
        f(Category::String, "ENDSWITH", "ENDSWITH(expr, endExpr)", Flink, ""),
        // Temporal
        f(Temporal, "LOCALTIME", "LOCALTIME", NotYet, "TIME values are not supported yet"),
        f(Temporal, "LOCALTIMESTAMP", "LOCALTIMESTAMP", Flink, CLOCK),
        f(Temporal, "CURRENT_TIME", "CURRENT_TIME", NotYet, "TIME values are not supported yet"),
        f(Temporal, "CURRENT_DATE", "CURRENT_DATE", Flink, CLOCK),
        f(Temporal, "CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP", Flink, CLOCK),
        f(Temporal, "NOW", "NOW()", Flink, CLOCK),
        f(Temporal, "CURRENT_ROW_TIMESTAMP", "CURRENT_ROW_TIMESTAMP()", Flink, CLOCK),
        f(
            Temporal,
            "PROCTIME",
            "PROCTIME()",
            Flink,
            "processing time, read for each row as NOW(); a lookup join may name it in FOR SYSTEM_TIME AS OF; \
             TUMBLE, HOP and CUMULATE over a PROCTIME() column are processing-time windows (closed by the clock)",
        ),
        f(Temporal, "EXTRACT", "EXTRACT(timeinterval FROM temporal)", DataFusion, ""),
        f(Temporal, "YEAR", "YEAR(date)", Flink, ""),
        f(Temporal, "QUARTER", "QUARTER(date)", Flink, ""),
        f(Temporal, "MONTH", "MONTH(date)", Flink, ""),
        f(Temporal, "WEEK", "WEEK(date)", Flink, "ISO 8601 week number"),
        f(Temporal, "DAYOFYEAR", "DAYOFYEAR(date)", Flink, ""),
        f(Temporal, "DAYOFMONTH", "DAYOFMONTH(date)", Flink, ""),
        f(Temporal, "DAYOFWEEK", "DAYOFWEEK(date)", Flink, "1 = Sunday ... 7 = Saturday"),
        f(Temporal, "HOUR", "HOUR(timestamp)", Flink, ""),
        f(Temporal, "MINUTE", "MINUTE(timestamp)", Flink, ""),
        f(Temporal, "SECOND", "SECOND(timestamp)", Flink, ""),
        f(
            Temporal,
            "DATE_FORMAT",
            "DATE_FORMAT(timestamp, string)",
            Flink,
            "Java DateTimeFormatter patterns; a pattern letter we cannot format is an error, never literal text",
        ),
        f(
            Temporal,
            "TIMESTAMPADD",
            "TIMESTAMPADD(timeintervalunit, interval, timepoint)",
            Flink,
            "the unit as Flink writes it (DAY) or as a string ('DAY')",
        ),
        f(
            Temporal,
            "TIMESTAMPDIFF",
            "TIMESTAMPDIFF(timepointunit, timepoint1, timepoint2)",
            Flink,
            "the unit as Flink writes it (DAY) or as a string ('DAY')",
        ),
        f(
            Temporal,
            "CONVERT_TZ",
            "CONVERT_TZ(string1, string2, string3)",
            Flink,
            "zones are regions ('America/Los_Angeles'), 'UTC' or offsets ('GMT-08:00'); an unknown zone fails the plan (Java silently takes GMT), three-letter IDs such as 'PST' are not supported",
        ),
        f(Temporal, "FROM_UNIXTIME", "FROM_UNIXTIME(numeric[, string])", Flink, UTC),
        f(Temporal, "UNIX_TIMESTAMP", "UNIX_TIMESTAMP([string1[, string2]])", Flink, UTC),
        f(Temporal, "TO_DATE", "TO_DATE(string1[, string2])", Flink, ""),
        f(
            Temporal,
            "TO_TIMESTAMP",
            "TO_TIMESTAMP(string1[, string2])",
            Flink,
            "NULL when the text does not match the pattern",
        ),
        f(
            Temporal,
            "TO_TIMESTAMP_LTZ",
            "TO_TIMESTAMP_LTZ(numeric, precision)",
            Flink,
            "gives TIMESTAMP(3) in UTC, as TIMESTAMP_LTZ is not supported yet",
        ),
        f(
            Temporal,
            "CURRENT_WATERMARK",
            "CURRENT_WATERMARK(rowtime)",
            Flink,
            "the watermark each row is judged by (its partition's, before it), NULL before the first; on a \
             table's rows (before aggregations and joins), over the event-time column",
        ),
        // Conditional
        f(Conditional, "NULLIF", "NULLIF(value1, value2)", DataFusion, ""),
        f(Conditional, "COALESCE", "COALESCE(value1[, value2]*)", DataFusion, ""),
        f(Conditional, "IF", "IF(condition, true_value, false_value)", Flink, "only the chosen branch is evaluated"),
        f(Conditional, "IFNULL", "IFNULL(input, null_replacement)", DataFusion, ""),
        f(Conditional, "IS_ALPHA", "IS_ALPHA(string)", Flink, "FALSE for NULL"),
        f(Conditional, "IS_DECIMAL", "IS_DECIMAL(string)", Flink, "FALSE for NULL"),
        f(Conditional, "IS_DIGIT", "IS_DIGIT(string)", Flink, "FALSE for NULL"),
        f(
            Conditional,
            "GREATEST",
            "GREATEST(value1[, value2]*)",
            Flink,
            "NULL if any argument is NULL (DataFusion's skips NULLs)",
        ),
        f(
            Conditional,
            "LEAST",
            "LEAST(value1[, value2]*)",
            Flink,
            "NULL if any argument is NULL (DataFusion's skips NULLs)",
        ),
        // Type conversion
        f(Conversion, "TYPEOF", "TYPEOF(input[, force_serializable])", NotYet, ""),
        // Collection
        f(Collection, "CARDINALITY", "CARDINALITY(array)", DataFusion, ""),
        f(Collection, "ELEMENT", "ELEMENT(array)", NotYet, ""),
        f(Collection, "ARRAY_APPEND", "ARRAY_APPEND(array, element)", DataFusion, ""),
        f(Collection, "ARRAY_CONTAINS", "ARRAY_CONTAINS(array, element)", DataFusion, ""),
        f(Collection, "ARRAY_DISTINCT", "ARRAY_DISTINCT(array)", NotYet, "DataFusion's orders the result differently"),
        f(
            Collection,
            "ARRAY_POSITION",
            "ARRAY_POSITION(array, element)",
            NotYet,
            "DataFusion's gives NULL, not 0, when the element is missing",
        ),
        f(
            Collection,
            "ARRAY_PREPEND",
            "ARRAY_PREPEND(array, element)",
            NotYet,
            "DataFusion's takes its arguments in the other order",
        ),
        f(
            Collection,
            "ARRAY_REMOVE",
            "ARRAY_REMOVE(array, element)",
            NotYet,
            "DataFusion's removes only the first match",
        ),
        f(Collection, "ARRAY_REVERSE", "ARRAY_REVERSE(array)", DataFusion, ""),
        f(Collection, "ARRAY_SLICE", "ARRAY_SLICE(array, start_offset[, end_offset])", NotYet, ""),
        f(Collection, "ARRAY_SORT", "ARRAY_SORT(array[, ascending_order[, null_first]])", NotYet, ""),
        f(Collection, "ARRAY_UNION", "ARRAY_UNION(array1, array2)", NotYet, ""),
        f(Collection, "ARRAY_CONCAT", "ARRAY_CONCAT(array1, ...)", DataFusion, ""),
        f(Collection, "ARRAY_EXCEPT", "ARRAY_EXCEPT(array1, array2)", NotYet, ""),
        f(Collection, "ARRAY_INTERSECT", "ARRAY_INTERSECT(array1, array2)", NotYet, ""),
        f(Collection, "ARRAY_MAX", "ARRAY_MAX(array)", DataFusion, ""),
        f(Collection, "ARRAY_MIN", "ARRAY_MIN(array)", DataFusion, ""),
        f(Collection, "ARRAY_JOIN", "ARRAY_JOIN(array, delimiter[, nullReplacement])", DataFusion, ""),
        f(Collection, "SPLIT", "SPLIT(string, delimiter)", NotYet, ""),
        f(Collection, "MAP_KEYS", "MAP_KEYS(map)", NotYet, NO_MAP),
        f(Collection, "MAP_VALUES", "MAP_VALUES(map)", NotYet, NO_MAP),
        f(Collection, "MAP_ENTRIES", "MAP_ENTRIES(map)", NotYet, NO_MAP),
        f(Collection, "MAP_FROM_ARRAYS", "MAP_FROM_ARRAYS(array_of_keys, array_of_values)", NotYet, NO_MAP),
        f(Collection, "MAP_UNION", "MAP_UNION(map1, ...)", NotYet, NO_MAP),
        // JSON
        f(Json, "JSON_EXISTS", "JSON_EXISTS(jsonValue, path)", Flink, "ON ERROR clauses are not supported yet"),
        f(Json, "JSON_STRING", "JSON_STRING(value)", Flink, ""),
        f(
            Json,
            "JSON_VALUE",
            "JSON_VALUE(jsonValue, path)",
            Flink,
            "gives STRING; RETURNING and ON EMPTY / ON ERROR clauses are not supported yet",
        ),
        f(
            Json,
            "JSON_QUERY",
            "JSON_QUERY(jsonValue, path)",
            Flink,
            "WITHOUT WRAPPER only; wrapper and ON EMPTY / ON ERROR clauses are not supported yet",
        ),
        f(Json, "JSON_QUOTE", "JSON_QUOTE(string)", NotYet, ""),
        f(Json, "JSON_UNQUOTE", "JSON_UNQUOTE(string)", NotYet, ""),
        f(Json, "JSON_OBJECT", "JSON_OBJECT([[KEY] key VALUE value]* [ { NULL | ABSENT } ON NULL ])", NotYet, ""),
        f(Json, "JSON_ARRAY", "JSON_ARRAY([value]* [ { NULL | ABSENT } ON NULL ])", NotYet, ""),
        // Hash
        f(Hash, "MD5", "MD5(string)", DataFusion, ""),
        f(Hash, "SHA1", "SHA1(string)", NotYet, ""),
        f(Hash, "SHA224", "SHA224(string)", Flink, ""),
        f(Hash, "SHA256", "SHA256(string)", Flink, ""),
        f(Hash, "SHA384", "SHA384(string)", Flink, ""),
        f(Hash, "SHA512", "SHA512(string)", Flink, ""),
        f(Hash, "SHA2", "SHA2(string, hashLength)", Flink, ""),
        // Grouping
        f(Grouping, "GROUP_ID", "GROUP_ID()", NotYet, "GROUPING SETS are not supported yet"),
        f(
            Grouping,
            "GROUPING",
            "GROUPING(expression1 [, expression2]*)",
            NotYet,
            "GROUPING SETS are not supported yet",
        ),
        f(
            Grouping,
            "GROUPING_ID",
            "GROUPING_ID(expression1 [, expression2]*)",
            NotYet,
            "GROUPING SETS are not supported yet",
        ),
        // Aggregate
        f(Aggregate, "COUNT", "COUNT([ ALL ] expression | DISTINCT expression1 [, expression2]* | *)", DataFusion, ""),
        f(Aggregate, "AVG", "AVG([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "SUM", "SUM([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "MAX", "MAX([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "MIN", "MIN([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "STDDEV_POP", "STDDEV_POP([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "STDDEV_SAMP", "STDDEV_SAMP([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "VAR_POP", "VAR_POP([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "VAR_SAMP", "VAR_SAMP([ ALL | DISTINCT ] expression)", DataFusion, ""),
        f(Aggregate, "VARIANCE", "VARIANCE([ ALL | DISTINCT ] expression)", DataFusion, "DataFusion's VAR_SAMP"),
        f(
            Aggregate,
            "COLLECT",
            "COLLECT([ ALL | DISTINCT ] expression)",
            NotYet,
            "MULTISET values are not supported yet",
        ),
        f(Aggregate, "LISTAGG", "LISTAGG(expression [, separator])", NotYet, ""),
        f(Aggregate, "FIRST_VALUE", "FIRST_VALUE(expression)", NotYet, SKIP_NULLS),
        f(Aggregate, "LAST_VALUE", "LAST_VALUE(expression)", NotYet, SKIP_NULLS),
        f(
            Aggregate,
            "ARRAY_AGG",
            "ARRAY_AGG([ ALL | DISTINCT ] expression [ RESPECT NULLS | IGNORE NULLS ])",
            NotYet,
            "",
        ),
        f(
            Aggregate,
            "JSON_OBJECTAGG",
            "JSON_OBJECTAGG([KEY] key VALUE value [ { NULL | ABSENT } ON NULL ])",
            NotYet,
            "",
        ),
        f(Aggregate, "JSON_ARRAYAGG", "JSON_ARRAYAGG(items [ { NULL | ABSENT } ON NULL ])", NotYet, ""),
        // Window
        f(Window, "ROW_NUMBER", "ROW_NUMBER()", DataFusion, TOP_N),
        f(Window, "RANK", "RANK()", DataFusion, PER_WINDOW),
        f(Window, "DENSE_RANK", "DENSE_RANK()", DataFusion, PER_WINDOW),
        f(Window, "PERCENT_RANK", "PERCENT_RANK()", DataFusion, PER_WINDOW),
        f(Window, "CUME_DIST", "CUME_DIST()", DataFusion, PER_WINDOW),
        f(Window, "NTILE", "NTILE(n)", DataFusion, PER_WINDOW),
        f(
            Window,
            "LEAD",
            "LEAD(expression [, offset] [, default])",
            DataFusion,
            "OVER (PARTITION BY ... ORDER BY the event-time column), offset a literal: a row waits for the rows after it; or within windows",
        ),
        f(
            Window,
            "LAG",
            "LAG(expression [, offset] [, default])",
            DataFusion,
            "OVER (PARTITION BY ... ORDER BY the event-time column); the offset is a literal",
        ),
    ]
};
