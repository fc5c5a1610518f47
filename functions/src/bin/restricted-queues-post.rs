//! Lambda function: `POST /v1/restricted-queues/{queue}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("restricted-queues-post").await
}
