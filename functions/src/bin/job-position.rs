//! Lambda function: `GET /v1/job/{id}/position`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("job-position").await
}
