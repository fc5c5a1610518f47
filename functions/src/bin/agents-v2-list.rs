//! Lambda function: `GET /v2/agents/data`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agents-v2-list").await
}
