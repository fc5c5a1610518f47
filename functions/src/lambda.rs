//! The Lambda side: what every function binary runs.

use testflinger_shared::app::Settings;
use testflinger_shared::backends::Backends;
use testflinger_shared::config::Config;

use crate::{endpoint_app, telemetry, AppState};

/// Serves one endpoint under the Lambda runtime. Configuration is read and
/// the backends are opened once per cold start, outside the request path.
pub async fn serve(endpoint: &str) -> Result<(), lambda_http::Error> {
    let config = Config::load()?;
    telemetry::init(config.log_format);
    let backends = Backends::open(&config).await?;
    let mut settings = Settings::new(&config);
    settings.direct_transfers = true;
    crate::metrics::log_embedded_metrics();
    let state = AppState::with_settings(settings, backends);
    let app = endpoint_app(endpoint, state)
        .ok_or_else(|| format!("no endpoint is named {endpoint:?}"))?;
    lambda_http::run(app).await
}

/// Runs one scheduled task (`routes::SCHEDULED`) under the Lambda runtime:
/// each invocation (an EventBridge event, whatever its body) runs it once.
pub async fn run_scheduled(task: &str) -> Result<(), lambda_http::Error> {
    let scheduled = crate::routes::SCHEDULED
        .iter()
        .find(|s| s.name == task)
        .ok_or_else(|| format!("no scheduled task is named {task:?}"))?;
    let config = Config::load()?;
    telemetry::init(config.log_format);
    let backends = Backends::open(&config).await?;
    let state = AppState::new(&config, backends);
    let run = scheduled.run;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |_event: lambda_http::LambdaEvent<serde_json::Value>| {
            let app = state.app.clone();
            async move { run(app).await.map_err(lambda_http::Error::from) }
        },
    ))
    .await
}
