//! The fingerprint of a redaction: which code and which settings produced
//! a payload, in 16 hex characters (the envelope's `redacted_with`).
//!
//! **Why.** The collector redacts what it receives again, for what arrives
//! unredacted: older emitters, old spool files, other publishers. For an
//! envelope an emitter of this version already redacted with the same
//! settings, that second pass finds nothing (redacting twice changes
//! nothing: replacements match no rule), yet it was a third of the Redis
//! thread's work per event (issue 21). The emitter names what it redacted
//! with; the collector skips its pass only when that equals its own
//! fingerprint, and redacts as before on any difference: another version,
//! another privacy level, other patterns, other drop rules, a field that is
//! missing or malformed.
//!
//! **Not a security boundary.** A publisher that can write to the stream
//! can store any payload it likes, with or without this field; the second
//! pass protects honest senders of older versions, and the fingerprint
//! keeps that. So the hash needs to avoid accidental equality of two
//! different settings, not forgery: a 64-bit multiply-rotate mix with a
//! final avalanche, eight bytes at a time, so the emitter pays a few
//! hundred instructions for it on every hook (SHA-256, already linked for
//! decisions, would cost tens of thousands).
//!
//! **What it covers:** the crate's version (the built-in rules are code:
//! a new version may match differently), the privacy level, the built-in
//! rules turned off, each user pattern (name, prefix, character set,
//! lengths) and each drop rule (tools, files, paths), every text length-
//! prefixed so that no two lists of texts give the same bytes.

use super::settings::{Privacy, Settings};

/// The 16 lowercase hex digits of one redaction's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint of redacting with `settings` by this version's code.
    pub fn of(settings: &Settings) -> Fingerprint {
        let mut hash = Mix::new();
        hash.text(env!("CARGO_PKG_VERSION"));
        hash.word(match settings.privacy {
            Privacy::Full => 1,
            Privacy::Redacted => 2,
            Privacy::Metadata => 3,
        });
        let disabled = settings
            .disabled
            .iter()
            .fold(0u64, |bits, rule| bits | u64::from(rule.bit()));
        hash.word(disabled);
        hash.word(settings.patterns.len() as u64);
        for pattern in &settings.patterns {
            hash.text(&pattern.name);
            hash.text(&pattern.prefix);
            for word in pattern.chars {
                hash.word(word);
            }
            hash.word(pattern.min_len as u64);
            hash.word(pattern.max_len as u64);
        }
        hash.word(settings.drop.len() as u64);
        for rule in &settings.drop {
            for texts in [&rule.tools, &rule.files, &rule.paths] {
                hash.word(texts.len() as u64);
                for text in texts {
                    hash.text(text);
                }
            }
        }
        Fingerprint(hex(hash.finish()))
    }

    /// The hex text, as the envelope carries it.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A 64-bit mix, eight bytes at a time (see the module doc for why this
/// and not a cryptographic hash).
struct Mix(u64);

impl Mix {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new() -> Mix {
        Mix(0x6a09_e667_f3bc_c908)
    }

    fn word(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(Self::MULTIPLIER);
    }

    /// A text, after its length, so that `["ab", "c"]` and `["a", "bc"]`
    /// differ.
    fn text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(word));
        }
    }

    /// The splitmix64 finalizer: every input bit reaches every output bit.
    fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn hex(value: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (at, digit) in out.iter_mut().enumerate() {
        *digit = DIGITS[((value >> (60 - 4 * at)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::settings::DropRule;
    use crate::redact::Builtin;

    fn of(settings: Settings) -> String {
        Fingerprint::of(&settings).as_str().to_owned()
    }

    #[test]
    fn the_same_settings_give_the_same_sixteen_hex_digits() {
        let first = of(Settings::default());
        assert_eq!(first, of(Settings::default()));
        assert_eq!(first.len(), 16);
        assert!(first.bytes().all(|byte| byte.is_ascii_hexdigit()));
    }

    /// Every part of the settings changes the fingerprint, and moving a
    /// character from one text to the next does too.
    #[test]
    fn every_setting_changes_it() {
        let base = Settings::default();
        let mut variants = vec![
            Settings {
                privacy: Privacy::Full,
                ..base.clone()
            },
            Settings {
                privacy: Privacy::Metadata,
                ..base.clone()
            },
            Settings {
                disabled: vec![Builtin::ALL[0]],
                ..base.clone()
            },
            Settings {
                drop: Vec::new(),
                ..base.clone()
            },
        ];
        let rule = |tools: &[&'static str], files: &[&'static str]| DropRule {
            tools: tools.iter().map(|text| (*text).into()).collect(),
            files: files.iter().map(|text| (*text).into()).collect(),
            paths: vec!["tool_response".into()],
        };
        for drop in [
            vec![rule(&["ab"], &["c"])],
            vec![rule(&["a"], &["bc"])],
            vec![rule(&["a", "b"], &["c"])],
            vec![rule(&[], &["abc"])],
        ] {
            variants.push(Settings {
                drop,
                ..base.clone()
            });
        }
        let mut seen = vec![of(base)];
        for variant in variants {
            let fingerprint = of(variant);
            assert!(!seen.contains(&fingerprint), "{fingerprint} seen twice");
            seen.push(fingerprint);
        }
    }
}
