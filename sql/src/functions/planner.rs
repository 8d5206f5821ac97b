//! `SUBSTRING(s FROM a FOR b)` is syntax that DataFusion's SQL planner hands to its expression
//! planners rather than looking `substring` up by name: ours comes first and plans it as Flink's
//! `SUBSTR` (a start of 0 or below counts as Flink counts it, not as DataFusion does).

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{Expr, ScalarUDF};

#[derive(Debug)]
pub(super) struct FlinkExprPlanner {
    substr: Arc<ScalarUDF>,
}

impl FlinkExprPlanner {
    pub(super) fn new() -> Self {
        Self { substr: Arc::new(super::string::substr()) }
    }
}

impl ExprPlanner for FlinkExprPlanner {
    fn plan_substring(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.substr), args))))
    }
}
