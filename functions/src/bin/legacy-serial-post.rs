//! Lambda function: `POST /v1/result/{id}/serial_output`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("legacy-serial-post").await
}
