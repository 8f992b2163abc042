//! `redact [--privacy LEVEL] [FILE]`: shows a person what a hook would send
//! for a payload, and which rules fired, so they can check their rules
//! before trusting them.
//!
//! The input (FILE, or stdin) is one hook payload, or one per line (a JSONL
//! file such as the test fixtures); anything else is one payload of text,
//! as hook mode would take it. Each goes through the same code as hook mode
//! (`Envelope::from_hook_stdin`, then `Redactor::redact_envelope`). The
//! redacted payloads go to stdout, one per line, so they can be piped; what
//! fired goes to stderr. Neither ever holds the matched text.
#![allow(clippy::print_stdout, reason = "redact shows a person its result")]

use std::io::Read;

use hooktrail_shared::config;
use hooktrail_shared::envelope::Envelope;
use hooktrail_shared::redact::{Builtin, Privacy, Redactor, Report, Settings};

/// Runs `redact`; returns the exit code.
pub fn run(arguments: &[String]) -> u8 {
    let mut privacy = None;
    let mut file = None;
    let mut rest = arguments.iter();
    while let Some(argument) = rest.next() {
        match argument.as_str() {
            "--privacy" => match rest.next().and_then(|text| Privacy::parse(text)) {
                Some(level) => privacy = Some(level),
                None => {
                    eprintln!("--privacy takes full, redacted or metadata");
                    return 2;
                }
            },
            other if file.is_none() && !other.starts_with("--") => file = Some(other.to_owned()),
            other => {
                eprintln!("hooktrail-emit redact [--privacy full|redacted|metadata] [FILE]: unexpected {other:?}");
                return 2;
            }
        }
    }
    let mut input = Vec::new();
    let read = match &file {
        Some(path) => std::fs::read(path).map(|bytes| input = bytes),
        None => std::io::stdin().read_to_end(&mut input).map(drop),
    };
    if let Err(error) = read {
        eprintln!(
            "cannot read {}: {error}",
            file.as_deref().unwrap_or("stdin")
        );
        return 1;
    }

    let loaded = config::load();
    for problem in &loaded.problems {
        eprintln!("config: {problem}");
    }
    let mut settings = loaded.config.redaction;
    if let Some(level) = privacy {
        settings.privacy = level;
    }
    eprintln!("privacy: {}", settings.privacy.as_str());
    let redactor = Redactor::new(settings);

    let mut total = Report::default();
    for payload in payloads(&input) {
        let mut envelope = Envelope::from_hook_stdin(payload, String::new(), 0, String::new());
        let report = redactor.redact_envelope(&mut envelope);
        println!("{}", envelope.payload.get());
        total.merge(&report);
    }
    if total.is_empty() {
        eprintln!("fired: nothing");
    } else {
        for (rule, count) in &total.counts {
            eprintln!("fired: {rule} x{count}");
        }
    }
    0
}

/// Prints the active redaction for `check`: the privacy level, the built-in
/// rules, the user's patterns and the drop rules. Rule definitions hold no
/// secret (a prefix is not a key), so all of it can be shown.
pub fn describe(settings: &Settings) {
    println!("Redaction");
    println!("  privacy: {}", settings.privacy.as_str());
    println!(
        "  fingerprint: {} (a collector whose log names the same one does not redact these events again)",
        hooktrail_shared::redact::Fingerprint::of(settings).as_str()
    );
    let builtin: Vec<&str> = Builtin::ALL
        .into_iter()
        .filter(|rule| !settings.disabled.contains(rule))
        .map(Builtin::name)
        .collect();
    println!(
        "  built-in rules ({}): {}",
        builtin.len(),
        builtin.join(", ")
    );
    if !settings.disabled.is_empty() {
        let names: Vec<&str> = settings.disabled.iter().map(|rule| rule.name()).collect();
        println!("  disabled: {}", names.join(", "));
    }
    if settings.patterns.is_empty() {
        println!("  user patterns: none");
    }
    for pattern in &settings.patterns {
        println!(
            "  user pattern {}: {:?} then {}..={} of [{}]",
            pattern.name, pattern.prefix, pattern.min_len, pattern.max_len, pattern.chars_text
        );
    }
    match settings.privacy {
        Privacy::Redacted if settings.drop.is_empty() => println!("  drop rules: none"),
        Privacy::Redacted => {
            for rule in &settings.drop {
                let or_any = |list: &[std::borrow::Cow<str>]| {
                    if list.is_empty() {
                        "any".to_owned()
                    } else {
                        list.join(" ")
                    }
                };
                println!(
                    "  drop {} of tools {} on files {}",
                    rule.paths.join(", "),
                    or_any(&rule.tools),
                    or_any(&rule.files)
                );
            }
        }
        Privacy::Full => println!("  drop rules: not applied at privacy full"),
        Privacy::Metadata => {
            println!("  only names, ids, times, sizes, outcomes and usage leave the machine")
        }
    }
}

/// The payloads of the input: the whole input when it is one JSON value,
/// else each line when every non-empty line is one, else the whole input.
fn payloads(input: &[u8]) -> Vec<&[u8]> {
    if is_json(input) {
        return vec![input];
    }
    let lines: Vec<&[u8]> = input
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let every_line_json = !lines.is_empty() && lines.iter().all(|line| is_json(line));
    if every_line_json {
        lines
    } else {
        vec![input]
    }
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Box<serde_json::value::RawValue>>(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_payload_lines_or_text() {
        assert_eq!(payloads(b"{\"a\":\n1}").len(), 1);
        assert_eq!(payloads(b"{\"a\":1}\n\n{\"b\":2}\n").len(), 2);
        assert_eq!(payloads(b"{\"a\":1}\nnot json\n").len(), 1);
        assert_eq!(payloads(b"plain text").len(), 1);
    }
}
