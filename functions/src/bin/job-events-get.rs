//! Lambda function: `GET /v1/events/job/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("job-events-get").await
}
