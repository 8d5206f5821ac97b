//! An analyzer rule, run after type coercion: `IF(c, a, b)` becomes `CASE WHEN c THEN a ELSE b
//! END`, which evaluates only the branch each row takes, as Flink's `IF` does. A function call
//! would evaluate both branches for every row, so `IF(n = 0, 0, x / n)` would fail on `x / 0`.

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::logical_expr::expr::{Case, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug)]
pub(super) struct LazyBranches;

impl AnalyzerRule for LazyBranches {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(if_as_case)?;
                // Keep the column name of a rewritten top-level expression, so the schema holds.
                Ok(if rewritten.transformed { rewritten.update_data(|e| name.restore(e)) } else { rewritten })
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "flink_if_as_case"
    }
}

fn if_as_case(expr: Expr) -> Result<Transformed<Expr>> {
    match expr {
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "if" => {
            match <[Expr; 3]>::try_from(args) {
                Ok([condition, then, otherwise]) => {
                    let case = Case::new(None, vec![(Box::new(condition), Box::new(then))], Some(Box::new(otherwise)));
                    Ok(Transformed::yes(Expr::Case(case)))
                }
                Err(args) => Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args }))),
            }
        }
        other => Ok(Transformed::no(other)),
    }
}
