//! Lambda function: `GET /v2/agents/{name}/data`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-v2-get").await
}
