//! Lambda function: `PUT /v1/secrets/{client_id}/{path+}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("secret-put").await
}
