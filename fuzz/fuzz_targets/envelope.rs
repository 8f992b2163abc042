//! Fuzzes both directions of the envelope; the property lives with the
//! regression test that replays saved crash inputs.
#![no_main]

#[path = "../../shared/tests/support/envelope_property.rs"]
mod envelope_property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| envelope_property::check(data));
