//! Lambda function: `PUT /v2/agents/{name}/owner`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("agent-v2-owner").await
}
