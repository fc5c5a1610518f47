//! The memory budget for request bodies held in memory.
//!
//! JSON bodies and log fragments are read whole before they are parsed, so
//! many large ones at once could take the process's memory. Every byte read
//! into memory is charged against one budget shared by all requests
//! (`TESTFLINGER_BUFFER_BUDGET`, 256 MiB by default), [`CHARGE_FACTOR`]
//! times: once for the bytes, and for the parsed and stored copies made of
//! them while the request is served. The charge is held until the handler
//! has answered. A request whose body does not fit while others hold the
//! budget is answered 503 with `Retry-After` at once, before it is read
//! further; streamed uploads are not buffered and are not charged.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use testflinger_shared::Error;

use crate::AppState;

/// How many times a buffered byte is charged: the bytes, the parsed value
/// and the copy written to the store all live until the answer.
pub const CHARGE_FACTOR: u64 = 4;

/// The budget counts in KiB, so that a few GiB fit a semaphore's permits.
const UNIT: u64 = 1 << 10;

/// The bytes all requests together may hold in memory.
#[derive(Clone, Debug)]
pub struct BufferBudget {
    permits: Arc<Semaphore>,
    units: u64,
}

impl BufferBudget {
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        BufferBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The bytes not held by any request now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.units * UNIT
    }
}

/// What one request holds: the bytes charged so far and their permit.
struct Held {
    budget: BufferBudget,
    charged: Mutex<(u64, Option<OwnedSemaphorePermit>)>,
}

tokio::task_local! {
    static HELD: Held;
}

/// The middleware that gives each request its account with the budget,
/// released when the handler has answered.
pub async fn within_budget(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let held = Held {
        budget: state.budget.clone(),
        charged: Mutex::new((0, None)),
    };
    HELD.scope(held, next.run(request)).await
}

/// Charges `bytes` more read into memory by the current request; 503 when
/// the budget cannot hold them. Outside a request (a unit test calling a
/// reader directly) nothing is charged.
pub fn charge(bytes: u64) -> Result<(), Error> {
    HELD.try_with(|held| held.charge(bytes)).unwrap_or(Ok(()))
}

impl Held {
    fn charge(&self, bytes: u64) -> Result<(), Error> {
        let mut charged = self.charged.lock().unwrap_or_else(|e| e.into_inner());
        let total = charged.0.saturating_add(bytes);
        let units = |bytes: u64| bytes.saturating_mul(CHARGE_FACTOR).div_ceil(UNIT);
        let more = units(total) - units(charged.0);
        if more > 0 {
            let permit = u32::try_from(more)
                .ok()
                .and_then(|n| self.budget.permits.clone().try_acquire_many_owned(n).ok())
                .ok_or_else(|| {
                    Error::Busy(format!(
                        "The server is holding as many request bodies in memory as it may \
                         ({} MiB); try again in a moment.",
                        self.budget.total() >> 20
                    ))
                })?;
            match &mut charged.1 {
                Some(held) => held.merge(permit),
                None => charged.1 = Some(permit),
            }
        }
        charged.0 = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_are_held_until_the_request_ends_and_refused_when_full() {
        let budget = BufferBudget::new(8 * CHARGE_FACTOR * UNIT);
        let held = |budget: &BufferBudget| Held {
            budget: budget.clone(),
            charged: Mutex::new((0, None)),
        };
        let first = held(&budget);
        first.charge(3 * UNIT).unwrap();
        first.charge(1).unwrap();
        assert_eq!(
            budget.available(),
            (32 - 13) * UNIT,
            "3 KiB and a byte: 13 units"
        );
        let second = held(&budget);
        assert!(matches!(second.charge(5 * UNIT), Err(Error::Busy(_))));
        second.charge(2 * UNIT).unwrap();
        drop(first);
        second.charge(5 * UNIT).unwrap();
        drop(second);
        assert_eq!(budget.available(), budget.total());
        // Outside a request nothing is charged.
        assert!(charge(u64::MAX).is_ok());
    }
}
