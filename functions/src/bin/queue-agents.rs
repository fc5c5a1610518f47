//! Lambda function: `GET /v1/queues/{queue}/agents`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("queue-agents").await
}
