//! Lambda function: `POST /v2/agents/{name}/data`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-v2-post").await
}
