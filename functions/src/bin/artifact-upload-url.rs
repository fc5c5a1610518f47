//! Lambda function: `POST /v1/result/{id}/artifact/upload-url`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("artifact-upload-url").await
}
