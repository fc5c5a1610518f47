//! Lambda function: `GET /v1/agents/data/{name}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-data-get").await
}
