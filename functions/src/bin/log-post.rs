//! Lambda function: `POST /v1/result/{id}/log/{log_type}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("log-post").await
}
