//! Lambda function: `POST /v1/result/{id}/artifact`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("artifact-upload").await
}
