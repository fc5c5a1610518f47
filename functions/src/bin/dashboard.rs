//! Lambda function: every dashboard page (`routes::PAGES`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("dashboard").await
}
