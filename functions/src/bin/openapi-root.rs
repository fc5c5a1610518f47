//! Lambda function: `GET /openapi.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("openapi-root").await
}
