//! Lambda function: `DELETE /v1/restricted-queues/{queue}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("restricted-queues-delete").await
}
