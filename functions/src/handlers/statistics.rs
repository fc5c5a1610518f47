//! Statistics of the server's use: counts of submitted jobs.

use axum::extract::State;
use axum::http::request::Parts;
use axum::Json;
use serde_json::Value;
use testflinger_shared::Timestamp;

use crate::error::ApiResult;
use crate::{query, views, AppState};

/// `GET /v1/statistics/jobs?group_by=submitted_by|queue&start=..&stop=..&queues=..&submitters=..`
pub async fn job_statistics(State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let request = query::statistics_request(&query::pairs(parts.uri.query()))?;
    let stats = state.app.job_statistics(request, Timestamp::now()).await?;
    Ok(Json(views::job_statistics(&stats)))
}
