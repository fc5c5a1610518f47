//! Lambda function: `POST /v1/job`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("job-submit").await
}
