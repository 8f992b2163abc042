//! One time budget for a whole delivery.
//!
//! The `redis` crate gives connect, read and write separate timeouts, which
//! add up (DESIGN §9). Here every step asks the same [`Deadline`] how much time
//! is left and uses that as its timeout, so DNS, connect, TLS, AUTH and the
//! command together never exceed the budget.

use std::io;
use std::time::{Duration, Instant};

/// The moment a delivery must be finished by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the budget runs out.
    end: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + budget,
        }
    }

    /// The time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// The time left as a timeout for one I/O step; a passed deadline is a
    /// `TimedOut` error, so callers can use `?`.
    pub fn timeout(&self) -> io::Result<Duration> {
        self.remaining()
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    }
}
