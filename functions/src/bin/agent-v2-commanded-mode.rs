//! Lambda function: `PATCH /v2/agents/{name}/commanded_mode`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-v2-commanded-mode").await
}
