//! Lambda function: `POST /v1/agents/images`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-images-post").await
}
