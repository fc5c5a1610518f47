//! Lambda function: `GET /v1/statistics/jobs`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("statistics-jobs").await
}
