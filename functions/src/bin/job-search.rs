//! Lambda function: `GET /v1/job/search`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("job-search").await
}
