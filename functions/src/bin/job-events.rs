//! Lambda function: `POST /v1/job/{id}/events`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("job-events").await
}
