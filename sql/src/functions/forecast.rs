//! `FORECAST(value, ts, h [, alpha, beta])`: an aggregate that fits Holt's linear trend model
//! (double exponential smoothing, additive trend, no seasonality) to a group's values taken in
//! `ts` order and returns the next `h` values as an `ARRAY<DOUBLE>`.
//!
//! ```text
//!  level_t = α·y_t + (1 − α)·(level_{t−1} + trend_{t−1})
//!  trend_t = β·(level_t − level_{t−1}) + (1 − β)·trend_{t−1}
//!  forecast_{n+k} = level_n + k·trend_n            (k = 1..h)
//! ```
//!
//! The start is statsmodels' `legacy-heuristic` one: `level = y_0`, `trend = y_1 − y_0`, and the
//! recursion then runs over every value from `y_0`. With `alpha` and `beta` given (constants in
//! [0, 1]) the model uses them; without, they are fitted by least squares of the one-step-ahead
//! errors over `0 ≤ β ≤ α ≤ 1` (statsmodels' `Holt(...).fit()` bounds): a grid of steps of 0.05,
//! then a pattern search down to steps of 1e-7 from each of the grid's five deepest valleys. The
//! test suite checks both forms against statsmodels on random series.
//!
//! The points are taken as evenly spaced (per-minute window results, say): `ts` orders them and
//! nothing else. NULL values are skipped; a group with no value gives NULL, one value a flat
//! forecast. Rows can be taken back out (`retract_batch`), so FORECAST runs in OVER frames as
//! well as in window aggregations. It keeps its group's rows, so an aggregation without a
//! window (whose groups never end) refuses it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;

/// The `FORECAST` aggregate function.
pub fn forecast() -> AggregateUDF {
    AggregateUDF::new_from_impl(Forecast { signature: Signature::user_defined(Volatility::Immutable) })
}

/// The largest horizon.
const MAX_HORIZON: i64 = 10_000;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Forecast {
    signature: Signature,
}

fn item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Float64, true))
}

impl AggregateUDFImpl for Forecast {
    fn name(&self) -> &str {
        "forecast"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !matches!(arg_types.len(), 3 | 5) {
            return plan_err!(
                "FORECAST takes (value, ts, h) or (value, ts, h, alpha, beta), got {} arguments",
                arg_types.len()
            );
        }
        let mut types = vec![DataType::Float64];
        let ts = &arg_types[1];
        if !(ts.is_integer() || matches!(ts, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64)) {
            return plan_err!("FORECAST's second argument orders the values: a timestamp or an integer, got {ts}");
        }
        types.push(ts.clone());
        if !(arg_types[2].is_integer() || arg_types[2] == DataType::Null) {
            return plan_err!(
                "FORECAST's third argument is the number of values to forecast: an integer, got {}",
                arg_types[2]
            );
        }
        types.push(DataType::Int64);
        for t in &arg_types[3..] {
            if !(t.is_numeric() || *t == DataType::Null) {
                return plan_err!("FORECAST's alpha and beta are numbers in [0, 1], got {t}");
            }
            types.push(DataType::Float64);
        }
        if !arg_types[0].is_numeric() && arg_types[0] != DataType::Null {
            return plan_err!("FORECAST forecasts numbers, got {}", arg_types[0]);
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(item()))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let parameters = Parameters::of(args.exprs)?;
        Ok(Box::new(ForecastAccumulator { parameters, points: Vec::new() }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format_state_name(args.name, "ts"), DataType::List(int_item()), true)),
            Arc::new(Field::new(format_state_name(args.name, "values"), DataType::List(item()), true)),
        ])
    }

    fn supports_null_handling_clause(&self) -> bool {
        false
    }
}

fn int_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Int64, true))
}

/// The constant arguments: horizon and, maybe, fixed smoothing parameters.
#[derive(Debug, Clone, Copy)]
struct Parameters {
    horizon: usize,
    fixed: Option<(f64, f64)>,
}

impl Parameters {
    fn of(exprs: &[Arc<dyn datafusion::physical_expr::PhysicalExpr>]) -> Result<Self> {
        let constant = |i: usize, what: &str| -> Result<ScalarValue> {
            match exprs.get(i).and_then(|e| e.downcast_ref::<Literal>()) {
                Some(literal) if !literal.value().is_null() => Ok(literal.value().clone()),
                _ => plan_err!("FORECAST's {what} must be a constant (a literal), not a column or expression"),
            }
        };
        let horizon = match constant(2, "horizon h")?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(h)) if (1..=MAX_HORIZON).contains(&h) => h as usize,
            other => return plan_err!("FORECAST's horizon h must be between 1 and {MAX_HORIZON}, got {other}"),
        };
        let fixed = if exprs.len() == 5 {
            let mut smoothing = [0.0; 2];
            for (slot, (i, name)) in smoothing.iter_mut().zip([(3, "alpha"), (4, "beta")]) {
                *slot = match constant(i, name)?.cast_to(&DataType::Float64)? {
                    ScalarValue::Float64(Some(v)) if (0.0..=1.0).contains(&v) => v,
                    other => return plan_err!("FORECAST's {name} must be between 0 and 1, got {other}"),
                };
            }
            Some((smoothing[0], smoothing[1]))
        } else {
            None
        };
        Ok(Self { horizon, fixed })
    }
}

#[derive(Debug)]
struct ForecastAccumulator {
    parameters: Parameters,
    /// (order key, value), in arrival order.
    points: Vec<(i64, f64)>,
}

/// The order keys of `ts` as i64 (timestamps in their unit, dates in days).
fn order_keys(ts: &ArrayRef) -> Result<Int64Array> {
    let keys = match ts.data_type() {
        DataType::Timestamp(..) | DataType::Date64 | DataType::Date32 => {
            let as_int = if *ts.data_type() == DataType::Date32 { DataType::Int32 } else { DataType::Int64 };
            arrow::compute::cast(&arrow::compute::cast(ts, &as_int)?, &DataType::Int64)?
        }
        _ => arrow::compute::cast(ts, &DataType::Int64)?,
    };
    Ok(keys.as_primitive::<Int64Type>().clone())
}

/// The (key, value) pairs of rows where both are present.
fn rows(values: &[ArrayRef]) -> Result<Vec<(i64, f64)>> {
    let y = values[0].as_primitive::<Float64Type>();
    let keys = order_keys(&values[1])?;
    Ok((0..y.len()).filter(|&i| y.is_valid(i) && keys.is_valid(i)).map(|i| (keys.value(i), y.value(i))).collect())
}

impl Accumulator for ForecastAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.points.extend(rows(values)?);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for point in rows(values)? {
            // Frames slide in order: what leaves is at (or near) the front.
            if let Some(at) = self.points.iter().position(|p| p.0 == point.0 && p.1.to_bits() == point.1.to_bits()) {
                self.points.remove(at);
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.points.is_empty() {
            return Ok(ScalarValue::List(Arc::new(ListArray::new_null(item(), 1))));
        }
        let mut points = self.points.clone();
        points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let series: Vec<f64> = points.iter().map(|p| p.1).collect();
        let (alpha, beta) = self.parameters.fixed.unwrap_or_else(|| fit(&series));
        let forecast = Holt::run(&series, alpha, beta).forecast(self.parameters.horizon);
        Ok(SingleRowListArrayBuilder::new(Arc::new(Float64Array::from(forecast))).build_list_scalar())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.points.capacity() * size_of::<(i64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let keys = Int64Array::from_iter_values(self.points.iter().map(|p| p.0));
        let values = Float64Array::from_iter_values(self.points.iter().map(|p| p.1));
        Ok(vec![
            SingleRowListArrayBuilder::new(Arc::new(keys)).build_list_scalar(),
            SingleRowListArrayBuilder::new(Arc::new(values)).build_list_scalar(),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (keys, values) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..keys.len() {
            if keys.is_null(row) || values.is_null(row) {
                continue;
            }
            let (k, v) = (keys.value(row), values.value(row));
            let (k, v) = (k.as_primitive::<Int64Type>(), v.as_primitive::<Float64Type>());
            self.points.extend(k.values().iter().copied().zip(v.values().iter().copied()));
        }
        Ok(())
    }
}

/// Holt's recursion run over a series: the last level and trend, and the sum of squared
/// one-step-ahead errors.
#[derive(Debug, Clone, Copy)]
struct Holt {
    level: f64,
    trend: f64,
    sse: f64,
}

impl Holt {
    fn run(y: &[f64], alpha: f64, beta: f64) -> Self {
        let mut level = y[0];
        let mut trend = if y.len() > 1 { y[1] - y[0] } else { 0.0 };
        let mut sse = 0.0;
        for &value in y {
            let predicted = level + trend;
            sse += (value - predicted) * (value - predicted);
            let next = alpha * value + (1.0 - alpha) * predicted;
            trend = beta * (next - level) + (1.0 - beta) * trend;
            level = next;
        }
        Self { level, trend, sse }
    }

    fn forecast(&self, horizon: usize) -> Vec<f64> {
        (1..=horizon).map(|k| self.level + k as f64 * self.trend).collect()
    }
}

/// The (α, β) with `0 ≤ β ≤ α ≤ 1` of least squared one-step-ahead error. The error surface can
/// have several valleys of nearly equal depth far apart, so a pattern search starts from each of
/// the best few local minima of a grid and the deepest result wins.
fn fit(y: &[f64]) -> (f64, f64) {
    let sse = |alpha: f64, beta: f64| {
        let value = Holt::run(y, alpha, beta).sse;
        if value.is_nan() { f64::INFINITY } else { value }
    };
    const STEPS: usize = 20;
    let at = |i: usize, j: usize| (i as f64 / STEPS as f64, j as f64 / STEPS as f64);
    let mut grid = vec![vec![f64::INFINITY; STEPS + 1]; STEPS + 1];
    for (i, row) in grid.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate().take(i + 1) {
            let (a, b) = at(i, j);
            *cell = sse(a, b);
        }
    }
    let mut valleys: Vec<(f64, usize, usize)> = Vec::new();
    for i in 0..=STEPS {
        for j in 0..=i {
            let here = grid[i][j];
            let lowest = (-1i64..=1).all(|di| {
                (-1i64..=1).all(|dj| {
                    let (ni, nj) = (i as i64 + di, j as i64 + dj);
                    ni < 0 || nj < 0 || ni > STEPS as i64 || nj > ni || grid[ni as usize][nj as usize] >= here
                })
            });
            if lowest {
                valleys.push((here, i, j));
            }
        }
    }
    valleys.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best = (1.0, 0.0);
    let mut best_sse = sse(best.0, best.1);
    for &(start_sse, i, j) in valleys.iter().take(5) {
        let (mut point, mut point_sse) = (at(i, j), start_sse);
        // Pattern search: a step in each direction, halved when none improves.
        let mut step = 0.5 / STEPS as f64;
        while step > 1e-7 {
            let mut moved = false;
            for (da, db) in [(step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step), (step, step), (-step, -step)] {
                let a = (point.0 + da).clamp(0.0, 1.0);
                let b = (point.1 + db).clamp(0.0, a);
                let s = sse(a, b);
                if s < point_sse {
                    (point, point_sse) = ((a, b), s);
                    moved = true;
                }
            }
            if !moved {
                step /= 2.0;
            }
        }
        if point_sse < best_sse {
            (best, best_sse) = (point, point_sse);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_line_is_continued() {
        let y: Vec<f64> = (0..20).map(|i| 3.0 + 2.0 * i as f64).collect();
        let (alpha, beta) = fit(&y);
        let next = Holt::run(&y, alpha, beta).forecast(3);
        for (k, value) in next.iter().enumerate() {
            assert!((value - (3.0 + 2.0 * (20 + k) as f64)).abs() < 1e-9, "{next:?}");
        }
    }

    #[test]
    fn fixed_parameters_follow_the_recursion() {
        // statsmodels: Holt(y, initialization_method='legacy-heuristic')
        //   .fit(smoothing_level=0.5, smoothing_trend=0.2, optimized=False).forecast(2)
        let y = [10.0, 12.0, 11.0, 15.0];
        let holt = Holt::run(&y, 0.5, 0.2);
        let mut level = 10.0;
        let mut trend = 2.0;
        for v in y {
            let next = 0.5 * v + 0.5 * (level + trend);
            trend = 0.2 * (next - level) + 0.8 * trend;
            level = next;
        }
        assert_eq!(holt.forecast(2), vec![level + trend, level + 2.0 * trend]);
    }

    #[test]
    fn the_deepest_of_two_valleys_is_found() {
        // A series whose last value drops (a partial last window): the grid's best point is
        // (1, 0), SSE 6074; statsmodels finds (0.6745, 0.6745), SSE 6072.85.
        let y = [123.0, 112.0, 119.0, 103.0, 125.0, 128.0, 112.0, 129.0, 111.0, 122.0, 121.0, 118.0, 105.0, 41.0];
        let (alpha, beta) = fit(&y);
        assert!(Holt::run(&y, alpha, beta).sse <= 6072.85, "({alpha}, {beta})");
        let next = Holt::run(&y, alpha, beta).forecast(1)[0];
        assert!((next - 26.35264898).abs() < 1e-3, "{next}");
    }

    #[test]
    fn one_value_gives_a_flat_forecast() {
        assert_eq!(Holt::run(&[4.0], 0.3, 0.1).forecast(2), vec![4.0, 4.0]);
    }
}
