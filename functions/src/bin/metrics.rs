//! Lambda function: `GET /metrics` (the store-derived gauges are the lab's;
//! counters are this instance's: see the README's Metrics section).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::serve("metrics").await
}
