//! Lambda function: `GET /v1/client-permissions`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("client-permissions-list").await
}
