//! Fuzzes the API's and the WebSocket's query-string parsing, and checks the
//! property the WebSocket's replay-then-live switch relies on: for any filter,
//! the live test (`EventFilter::matches`) and the SQL used for replay and
//! `/api/events` (`EventFilter::sql`) select the same rows.
#![no_main]

#[path = "../../collector/tests/support/filter_property.rs"]
mod filter_property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| filter_property::check(data));
