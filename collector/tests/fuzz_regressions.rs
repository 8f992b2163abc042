//! Replays every input saved in `tests/fuzz-regressions/api_query/` through
//! the query-string property, so what the fuzzer found stays fixed.

mod support {
    pub mod filter_property;
}

use std::path::Path;

#[test]
fn api_query_fuzz_regressions_still_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-regressions/api_query");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz-regressions/api_query exists") {
        support::filter_property::check(&std::fs::read(entry.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}
