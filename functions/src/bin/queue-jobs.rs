//! Lambda function: `GET /v1/queues/{queue}/jobs`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("queue-jobs").await
}
