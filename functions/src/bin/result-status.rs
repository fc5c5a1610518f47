//! Lambda function: `GET /v1/result/{id}/status`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("result-status").await
}
