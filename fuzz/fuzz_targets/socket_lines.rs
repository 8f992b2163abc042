//! Fuzzes the socket's line framing: for any byte stream cut into any
//! chunks, `LineFramer` yields exactly the lines of a plain newline split,
//! reports lines over the limit instead of returning or buffering them, and
//! every line goes through the envelope parser without a panic.
#![no_main]

#[path = "../../collector/tests/support/socket_lines_property.rs"]
mod socket_lines_property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_lines_property::check(data));
