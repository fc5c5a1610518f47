//! Lambda function: the lease sweep (scheduled every minute), which
//! requeues the jobs of agents gone silent past their claim lease.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    testflinger_functions::lambda::run_scheduled("lease-sweep").await
}
