//! Lambda function: `GET /v1/result/{id}/log/{log_type}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("log-get").await
}
