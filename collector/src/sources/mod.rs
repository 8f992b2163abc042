//! Where events come in: one thread per source, each parsing what it reads
//! into [`crate::ingest::Submission`]s for the writer and acknowledging to
//! its sender only after the writer reports the commit.
//!
//! - [`socket`]: the `mio` Unix-socket loop (`ok` per line after commit);
//!   [`framing`] is its pure line splitting, fuzzed.
//! - [`redis`]: the Redis stream (consumer group, `XACK` after commit) or
//!   pub/sub, reconnecting with backoff.
//! - [`spool`]: the spool directory, at start and every second (file
//!   deleted after commit).
//!
//! Each is started the same way: a struct with named fields and `spawn(self)`.

pub(crate) mod framing;
pub(crate) mod redis;
pub(crate) mod socket;
pub(crate) mod spool;
