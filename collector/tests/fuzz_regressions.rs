//! Replays every input saved in `tests/fuzz-regressions/<target>/` through
//! that fuzz target's property, so what the fuzzer found stays fixed.

mod support;

use std::path::Path;

/// Runs `check` on every file of `tests/fuzz-regressions/<target>/`.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz-regressions")
        .join(target);
    let mut replayed = 0;
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{} exists: {error}", dir.display()))
    {
        check(&std::fs::read(entry.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn api_query_fuzz_regressions_still_pass() {
    replay("api_query", support::filter_property::check);
}

#[test]
fn socket_lines_fuzz_regressions_still_pass() {
    replay("socket_lines", support::socket_lines_property::check);
}
