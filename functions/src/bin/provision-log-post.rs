//! Lambda function: `POST /v1/agents/provision_logs/{name}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("provision-log-post").await
}
