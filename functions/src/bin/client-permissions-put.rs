//! Lambda function: `PUT /v1/client-permissions/{client_id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("client-permissions-put").await
}
