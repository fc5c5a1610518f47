//! Lambda function: `GET /v1/agents/images/{queue}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-images-get").await
}
