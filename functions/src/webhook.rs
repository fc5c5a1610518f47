//! The job-events relay's way out: one HTTPS client per process (per cold
//! start), no redirects, short timeouts. The rules of the relay are the
//! use case's (`testflinger_shared::app::events`).

use std::sync::OnceLock;

use async_trait::async_trait;
use serde_json::Value;
use testflinger_shared::app::events::WEBHOOK_TIMEOUT;
use testflinger_shared::app::{WebhookAnswer, WebhookFailure, WebhookMethod, WebhookSender};

pub struct HttpWebhooks;

fn http_client() -> Result<&'static reqwest::Client, WebhookFailure> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(WEBHOOK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            WebhookFailure::Unavailable
        })
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn send(
        &self,
        method: WebhookMethod,
        url: &str,
        bearer: Option<&str>,
        payload: &Value,
    ) -> Result<WebhookAnswer, WebhookFailure> {
        let client = http_client()?;
        let request = match method {
            WebhookMethod::Put => client.put(url),
            WebhookMethod::Post => client.post(url),
        };
        let mut request = request.json(payload);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.map_err(|e| {
            if e.is_timeout() {
                WebhookFailure::Timeout
            } else {
                WebhookFailure::Unreachable
            }
        })?;
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = answer.bytes().await.unwrap_or_default().to_vec();
        Ok(WebhookAnswer {
            status,
            content_type,
            body,
        })
    }
}
