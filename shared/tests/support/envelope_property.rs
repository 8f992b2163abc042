//! The envelope's round-trip property, shared by the `envelope` fuzz target
//! and the regression test that replays the fuzzer's saved inputs.

use hooktrail_shared::envelope::{parse_line, Envelope, MAX_LINE_BYTES};

/// Whatever arrives on a hook's stdin becomes an envelope that the collector
/// parses back; whatever arrives on the wire (v1 or camelCase) parses or is
/// rejected with a reason, and never panics.
pub fn check(data: &[u8]) {
    if let Ok(envelope) = parse_line(data) {
        let line = envelope.to_json();
        assert!(
            !line.contains('\n'),
            "a parsed envelope must serialize to one line"
        );
        let again = parse_line(line.as_bytes()).expect("a re-serialized envelope parses");
        assert_eq!(again.id, envelope.id);
        assert_eq!(again.payload.get(), envelope.payload.get());
    }
    let built = Envelope::from_hook_stdin(data, "fuzz-id".to_owned(), 1, "fuzz-host".to_owned());
    let line = built.to_json();
    assert!(
        !line.contains('\n'),
        "the emitter's envelope must be one line"
    );
    assert!(
        line.len() <= MAX_LINE_BYTES,
        "the emitter's line is bounded"
    );
    let parsed = parse_line(line.as_bytes()).expect("the emitter's envelope always parses");
    assert_eq!(parsed.hook, built.hook);
    assert_eq!(parsed.payload.get(), built.payload.get());
}
