fn main() {
    std::process::exit(hooktrail_collector::run_from_args());
}
