//! The helpers of the collector's integration tests, in one folder. A test
//! file declares `mod support;` and uses what it needs:
//! - [`process`]: a collector process in a fresh temp directory, envelopes,
//!   socket clients, imports and database reads (the end-to-end tests).
//! - [`in_process`]: the HTTP server in the test's own process over a real
//!   SQLite file with the collector's schema, a row writer that publishes to
//!   the hub, and a small HTTP client (the API, UI and WebSocket tests).
//! - `filter_property` and `socket_lines_property`: the properties of the
//!   `api_query` and `socket_lines` fuzz targets, which `fuzz/` includes by
//!   path and `fuzz_regressions.rs` replays.
//!
//! Each test file is its own crate and uses a part of this: what one does not
//! use is not dead.
#![allow(dead_code)]

pub mod filter_property;
pub mod in_process;
pub mod process;
pub mod socket_lines_property;
