//! Lambda function: `GET /v1/agents/queues`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-queues-get").await
}
