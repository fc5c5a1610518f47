//! Lambda function: `GET /v1/job/{id}/attachments`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("attachments-download").await
}
