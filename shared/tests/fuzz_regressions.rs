//! Replays every input the fuzzer saved in `tests/fuzz-regressions/envelope/`
//! (crashes found and fixed, and interesting seeds) through the envelope
//! property, so a fixed bug stays fixed in the normal test suite.

mod support {
    pub mod envelope_property;
}

use std::path::Path;

#[test]
fn envelope_fuzz_regressions_still_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-regressions/envelope");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz-regressions/envelope exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        support::envelope_property::check(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn fixture_lines_satisfy_the_envelope_property() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut checked = 0;
    // Every JSONL file under the fixtures: hook payloads of each captured
    // scenario, and the transcripts (any input must satisfy the property).
    let mut folders = vec![fixtures];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path
                .extension()
                .is_none_or(|extension| extension != "jsonl")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                support::envelope_property::check(line.as_bytes());
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} fixture lines found");
}
