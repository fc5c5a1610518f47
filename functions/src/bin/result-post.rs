//! Lambda function: `POST /v1/result/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("result-post").await
}
