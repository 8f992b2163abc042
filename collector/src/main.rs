//! `hooktrail-collector`: a thin `main`; everything is in the library
//! (`hooktrail_collector::run_from_args`).

// main is the one place that exits, with run_from_args's code.
#[allow(clippy::disallowed_methods)]
fn main() {
    std::process::exit(hooktrail_collector::run_from_args());
}
