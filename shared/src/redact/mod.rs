//! Redaction: secrets never leave the machine (issue 12).
//!
//! The emitter redacts every payload in hook mode before it goes to Redis,
//! the socket or the spool; the collector runs the same code on anything that
//! arrives unredacted (older emitters, old spool files, imported history).
//! Both call [`Redactor`]:
//!
//! ```
//! use hooktrail_shared::redact::{Redactor, Settings};
//! let redactor = Redactor::new(Settings::default());
//! let redacted = redactor.redact_payload(r#"{"prompt":"my key is AKIAIOSFODNN7EXAMPLE"}"#);
//! assert_eq!(redacted.text, r#"{"prompt":"my key is [REDACTED:aws-access-key-id]"}"#);
//! assert_eq!(redacted.report.count("aws-access-key-id"), 1);
//! ```
//!
//! Three layers, cheapest last so that it runs on everything:
//! 1. the privacy level `metadata` keeps only names, ids, times, sizes,
//!    outcomes and usage ([`structure::metadata_only`]);
//! 2. at the `redacted` level (the default), drop rules replace whole JSON
//!    paths, such as what `Read` returned of a `.env` file
//!    ([`structure::drop_paths`]);
//! 3. at every level, one pass over the JSON text replaces what the built-in
//!    detectors and the user's patterns recognize ([`scan`]; its module doc
//!    argues why it works on the raw JSON text); strings that hide
//!    characters behind `\uXXXX` escapes are scanned again decoded
//!    ([`escapes`]).
//!
//! A redaction reads `[REDACTED:rule-name]`, so a reader knows something was
//! there and why. The [`Report`] says which rules fired how often; the
//! envelope carries it as `redactions` (DESIGN §3). Nothing here logs, and a
//! report holds rule names and counts only, never matched text.

mod escapes;
mod fingerprint;
mod rules;
mod scan;
pub mod settings;
pub mod structure;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::envelope::Envelope;

pub use fingerprint::Fingerprint;
pub use rules::{Builtin, RuleName, UserPattern};
pub use settings::{DropRule, Privacy, Settings};

/// Which rules fired and how many times, by rule name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Replacements per rule name. Empty (and unallocated) when nothing fired.
    pub counts: BTreeMap<String, u64>,
}

impl Report {
    /// Counts one replacement by `rule`.
    pub fn add(&mut self, rule: &str) {
        self.add_many(rule, 1);
    }

    /// Counts `count` replacements by `rule`.
    pub fn add_many(&mut self, rule: &str, count: u64) {
        match self.counts.get_mut(rule) {
            Some(total) => *total += count,
            None => {
                self.counts.insert(rule.to_owned(), count);
            }
        }
    }

    /// How many times `rule` fired.
    pub fn count(&self, rule: &str) -> u64 {
        self.counts.get(rule).copied().unwrap_or(0)
    }

    /// Whether nothing fired.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// All replacements, every rule together.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &Report) {
        for (rule, count) in &other.counts {
            self.add_many(rule, *count);
        }
    }
}

/// A redacted payload: borrowed when nothing changed.
#[derive(Debug, Clone)]
pub struct Redacted<'t> {
    /// The payload's JSON text after redaction.
    pub text: Cow<'t, str>,
    /// What fired.
    pub report: Report,
}

/// The redaction of one configuration. Building one fills a 256-byte table;
/// nothing is compiled.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// The configuration: privacy level, user patterns, drop rules.
    settings: Settings,
    /// The single-pass scanner for the built-in and user patterns.
    scanner: scan::Scanner,
    /// What redacting with these settings by this version is called in an
    /// envelope's `redacted_with`, so a collector with the same one need
    /// not redact it again ([`fingerprint`]'s module doc).
    fingerprint: Fingerprint,
}

impl Redactor {
    /// A redactor for `settings` (from `config::Config::redaction`).
    pub fn new(settings: Settings) -> Redactor {
        let scanner = scan::Scanner::new(&settings.disabled, &settings.patterns);
        let fingerprint = Fingerprint::of(&settings);
        Redactor {
            settings,
            scanner,
            fingerprint,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its fingerprint: these settings, this version.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Redacts one payload given as JSON text (a hook's stdin, an envelope's
    /// `payload`). The result is valid JSON whenever the input was.
    pub fn redact_payload<'t>(&self, payload: &'t str) -> Redacted<'t> {
        self.redact_payload_of(payload, false)
    }

    /// [`Redactor::redact_payload`]; `no_drop_applies` when the caller knows
    /// that no drop rule applies (by the payload's own tool name), so the
    /// payload is not probed for them: the result is the same.
    fn redact_payload_of<'t>(&self, payload: &'t str, no_drop_applies: bool) -> Redacted<'t> {
        let mut report = Report::default();
        let drop = &self.settings.drop;
        let structured = match self.settings.privacy {
            Privacy::Metadata => structure::metadata_only(payload, &mut report),
            Privacy::Redacted if !drop.is_empty() && !no_drop_applies => {
                structure::drop_paths(payload, drop, &mut report)
            }
            _ => None,
        };
        let text = structured.map_or(Cow::Borrowed(payload), Cow::Owned);
        let scanned = self.scanner.scan(&text, &self.settings.patterns, |rule| {
            report.add(rule.as_str())
        });
        let text = scanned.map_or(text, Cow::Owned);
        // `\u0041KIA…` reads `AKIA…` to every reader of the JSON: scan the
        // decoded strings too, and keep the decoded text only when that
        // finds something, so a payload where nothing fired stays unchanged.
        let decoded_scan = escapes::decoded(&text).and_then(|decoded| {
            self.scanner
                .scan(&decoded, &self.settings.patterns, |rule| {
                    report.add(rule.as_str())
                })
        });
        Redacted {
            text: decoded_scan.map_or(text, Cow::Owned),
            report,
        }
    }

    /// Redacts a parsed payload in place (for callers that hold a
    /// [`Value`]): the same rules, through its JSON text.
    pub fn redact_value(&self, value: &mut Value) -> Report {
        let Ok(text) = serde_json::to_string(value) else {
            return Report::default();
        };
        let redacted = self.redact_payload(&text);
        if let Cow::Owned(changed) = redacted.text {
            if let Ok(parsed) = serde_json::from_str(&changed) {
                *value = parsed;
            }
        }
        redacted.report
    }

    /// Redacts an envelope's payload in place, adds what fired to its
    /// `redactions` and names this redaction in its `redacted_with`.
    pub fn redact_envelope(&self, envelope: &mut Envelope) -> Report {
        self.redact_envelope_of(envelope, false)
    }

    /// What the collector calls on every envelope it receives: redacts it
    /// unless its `redacted_with` says that this very redaction (these
    /// settings, this version) already ran on it, where a second pass
    /// would change nothing (replacements match no rule). Returns whether
    /// it redacted.
    pub fn redact_received_envelope(&self, envelope: &mut Envelope) -> bool {
        if envelope.redacted_with.as_deref() == Some(self.fingerprint.as_str()) {
            return false;
        }
        self.redact_envelope_of(envelope, false);
        true
    }

    /// [`Redactor::redact_envelope`] for an envelope this process just built
    /// from a hook's stdin with [`Envelope::from_hook_input`], whose `tool`
    /// was lifted from that very payload: a `Bash` event, say, is then not
    /// parsed again to learn that no drop rule applies (issue 21). Never for
    /// a received envelope, whose `tool` is the sender's word.
    pub fn redact_built_envelope(&self, envelope: &mut Envelope) -> Report {
        // The lifted tool is the payload's `tool_name` unless the payload
        // was shortened (it may have cut the name) or the name was longer
        // than a lifted field keeps.
        let exact = !envelope.truncated
            && envelope
                .tool
                .as_ref()
                .is_none_or(|tool| tool.chars().count() < crate::envelope::MAX_LIFTED_CHARS);
        let no_drop_applies =
            exact && !structure::may_drop(&self.settings.drop, envelope.tool.as_deref());
        self.redact_envelope_of(envelope, no_drop_applies)
    }

    fn redact_envelope_of(&self, envelope: &mut Envelope, no_drop_applies: bool) -> Report {
        let redacted = self.redact_payload_of(envelope.payload.get(), no_drop_applies);
        let report = redacted.report;
        if let Cow::Owned(changed) = redacted.text {
            if let Ok(raw) = RawValue::from_string(changed) {
                envelope.payload = raw;
            }
        }
        if !report.is_empty() {
            let counts = envelope.redactions.get_or_insert_with(BTreeMap::new);
            for (rule, count) in &report.counts {
                *counts.entry(rule.clone()).or_insert(0) += count;
            }
        }
        envelope.redacted_with = Some(self.fingerprint.as_str().to_owned());
        report
    }
}

/// The names of every built-in rule, for `check` and the docs.
pub fn builtin_rule_names() -> impl Iterator<Item = &'static str> {
    Builtin::ALL.into_iter().map(Builtin::name)
}

#[cfg(test)]
impl Redactor {
    fn redacted_with_for_tests(&self) -> Option<String> {
        Some(self.fingerprint.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads with something for every layer: a token, a drop path, an
    /// escaped secret, a user pattern's prefix, and nothing at all.
    const PAYLOADS: [&str; 6] = [
        r#"{"hook_event_name":"PostToolUse","tool_name":"Read","tool_input":{"file_path":"/p/.env"},"tool_response":"A=1"}"#,
        r#"{"hook_event_name":"UserPromptSubmit","prompt":"my key is AKIAIOSFODNN7EXAMPLE and ghp_0123456789abcdefghijABCDEFGHIJ012345"}"#,
        r#"{"hook_event_name":"UserPromptSubmit","prompt":"\u0041KIAIOSFODNN7EXAMPLE"}"#,
        r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"export API_KEY=abcdef0123456789abcdef0123456789"}}"#,
        r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#,
        "not json at all",
    ];

    fn settings_variants() -> Vec<Settings> {
        vec![
            Settings::default(),
            Settings {
                privacy: Privacy::Full,
                ..Settings::default()
            },
            Settings {
                privacy: Privacy::Metadata,
                ..Settings::default()
            },
        ]
    }

    /// What the collector skips is what a second pass would have left
    /// unchanged: for every payload and privacy level, the envelope it
    /// stores is byte for byte the one it stored when it always redacted.
    #[test]
    fn skipping_a_redaction_that_already_ran_stores_the_same_bytes() {
        for settings in settings_variants() {
            let redactor = Redactor::new(settings);
            for payload in PAYLOADS {
                let mut sent =
                    Envelope::from_hook_stdin(payload.as_bytes(), "id".into(), 1, "m".into());
                redactor.redact_built_envelope(&mut sent);
                let line = sent.to_json();
                let mut skipped = crate::envelope::parse_line(line.as_bytes()).unwrap();
                let mut again = crate::envelope::parse_line(line.as_bytes()).unwrap();
                assert!(
                    !redactor.redact_received_envelope(&mut skipped),
                    "{payload}"
                );
                redactor.redact_envelope(&mut again);
                assert_eq!(skipped.to_json(), again.to_json(), "{payload}");
            }
        }
    }

    /// An envelope from an emitter with other settings, or without the
    /// field (older emitters, old spool files), or with a field that does
    /// not name this redaction, is redacted again.
    #[test]
    fn another_redaction_or_none_is_redacted_again() {
        let collector = Redactor::new(Settings::default());
        let emitter = Redactor::new(Settings {
            privacy: Privacy::Full,
            drop: Vec::new(),
            ..Settings::default()
        });
        let secret = r#"{"hook_event_name":"PostToolUse","tool_name":"Read","tool_input":{"file_path":"/p/.env"},"tool_response":"A=1"}"#;
        let build = || Envelope::from_hook_stdin(secret.as_bytes(), "id".into(), 1, "m".into());
        let mut from_other = build();
        emitter.redact_built_envelope(&mut from_other);
        assert_ne!(
            from_other.redacted_with,
            collector.redacted_with_for_tests()
        );
        let mut unmarked = build();
        let mut wrong = build();
        wrong.redacted_with = Some("0123456789abcdef".into());
        for mut envelope in [from_other, unmarked.clone(), wrong] {
            assert!(collector.redact_received_envelope(&mut envelope));
            assert!(envelope.payload.get().contains("[REDACTED:drop-path]"));
            assert_eq!(envelope.redacted_with, collector.redacted_with_for_tests());
        }
        unmarked.redacted_with = collector.redacted_with_for_tests();
        assert!(!collector.redact_received_envelope(&mut unmarked));
    }

    /// The emitter's shortcut (no drop probe when the lifted tool rules
    /// every drop rule out) changes no byte of any envelope.
    #[test]
    fn a_built_envelope_is_redacted_as_a_received_one() {
        let long_tool = "R".repeat(crate::envelope::MAX_LIFTED_CHARS + 5);
        let inputs = [
            r#"{"hook_event_name":"PostToolUse","tool_name":"Read","tool_input":{"file_path":"/p/.env"},"tool_response":"A=1"}"#.to_owned(),
            r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"cat .env","file_path":"/p/.env"},"tool_response":"x"}"#.to_owned(),
            r#"{"hook_event_name":"PreToolUse","tool_name":"Write","tool_input":{"file_path":"/k/id_rsa","content":"key"}}"#.to_owned(),
            r#"{"hook_event_name":"PreToolUse","tool_name":"Re\u0061d","tool_input":{"file_path":".env"},"tool_response":"s"}"#.to_owned(),
            r#"{"hook_event_name":"UserPromptSubmit","prompt":"AKIAIOSFODNN7EXAMPLE"}"#.to_owned(),
            r#"{"tool_name":null,"tool_input":{"file_path":".env"},"tool_response":"s"}"#.to_owned(),
            r#"{"tool_name":5,"tool_response":"s"}"#.to_owned(),
            format!(r#"{{"tool_name":"{long_tool}","tool_input":{{"file_path":".env"}},"tool_response":"s"}}"#),
            "not json at all .env".to_owned(),
        ];
        let every_tool = Settings {
            drop: vec![DropRule {
                tools: Vec::new(),
                files: vec![".env".into()],
                paths: vec!["tool_response".into()],
            }],
            ..Settings::default()
        };
        let long_glob = Settings {
            drop: vec![DropRule {
                tools: vec!["R*".into()],
                files: Vec::new(),
                paths: vec!["tool_response".into()],
            }],
            ..Settings::default()
        };
        for settings in [Settings::default(), every_tool, long_glob] {
            let redactor = Redactor::new(settings);
            for input in &inputs {
                let build =
                    || Envelope::from_hook_stdin(input.as_bytes(), "id".into(), 1, "m".into());
                let (mut received, mut built) = (build(), build());
                let report = redactor.redact_envelope(&mut received);
                assert_eq!(redactor.redact_built_envelope(&mut built), report);
                assert_eq!(built.to_json(), received.to_json(), "{input}");
            }
        }
    }
}
