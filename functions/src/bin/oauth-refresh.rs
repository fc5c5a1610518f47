//! Lambda function: `POST /v1/oauth2/refresh`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("oauth-refresh").await
}
