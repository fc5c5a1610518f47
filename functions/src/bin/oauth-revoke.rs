//! Lambda function: `POST /v1/oauth2/revoke`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("oauth-revoke").await
}
