//! Lambda function: `GET /v1/queues/wait_times`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("queue-wait-times").await
}
