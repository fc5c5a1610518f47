//! Lambda function: `GET /v1/openapi.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("openapi").await
}
