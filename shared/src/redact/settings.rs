//! The redaction part of the config file (DESIGN §4): the privacy level, the
//! user's extra patterns, the JSON paths to drop and the built-in rules to
//! turn off.
//!
//! ```json
//! {"privacy": "redacted",
//!  "redact": {"patterns": [{"name": "acme-token", "prefix": "acme_",
//!                           "chars": "A-Za-z0-9", "min_len": 20}],
//!             "drop": [{"tools": ["Read"], "files": [".env*", "*.pem", "id_*"],
//!                       "paths": ["tool_response"]}],
//!             "disable": ["high-entropy"]}}
//! ```
//!
//! User patterns are a literal prefix and a character set, not regexes: they
//! join the scanner's single pass as one more anchor byte, cost nothing when
//! absent, and keep the `regex` crate (and its compile at every start) out of
//! the emitter. Every mistake is a problem line naming the entry, never a
//! failure: a hook still delivers with what is left.

use std::borrow::Cow;

use serde_json::Value;

use super::rules::{parse_charset, Builtin, UserPattern};

/// How much of a payload leaves the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privacy {
    /// Every value, except what the detectors recognize as a secret.
    Full,
    /// As `Full`, and the configured JSON paths are dropped too (by default
    /// what `Read`, `Write` and `Edit` see of `.env*`, `*.pem`, `*.key`,
    /// `id_*` files). The default.
    #[default]
    Redacted,
    /// Only names, ids, times, sizes, outcomes and usage: no prompt text,
    /// tool inputs or outputs.
    Metadata,
}

impl Privacy {
    /// Parses `full`, `redacted` or `metadata`.
    pub fn parse(text: &str) -> Option<Privacy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "full" => Some(Privacy::Full),
            "redacted" | "redact" | "default" => Some(Privacy::Redacted),
            "metadata" | "meta" => Some(Privacy::Metadata),
            _ => None,
        }
    }

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Full => "full",
            Privacy::Redacted => "redacted",
            Privacy::Metadata => "metadata",
        }
    }
}

/// Drops JSON paths of a payload when its tool and file match. The texts
/// borrow the built-in rules' constants (a hook builds the default rules on
/// every event) and own what a config file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRule {
    /// Tool names (globs) the rule applies to; empty means every event.
    pub tools: Vec<Cow<'static, str>>,
    /// File name globs matched against the base name of
    /// `tool_input.file_path` (or `notebook_path`, `path`); empty means any
    /// payload of those tools.
    pub files: Vec<Cow<'static, str>>,
    /// Dotted paths into the payload (`tool_response`, `tool_input.content`)
    /// whose values are replaced by `[REDACTED:drop-path]`.
    pub paths: Vec<Cow<'static, str>>,
}

/// The effective redaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How much leaves the machine.
    pub privacy: Privacy,
    /// The user's extra patterns.
    pub patterns: Vec<UserPattern>,
    /// Paths dropped at the `redacted` level.
    pub drop: Vec<DropRule>,
    /// Built-in rules turned off (false positives a person chose to accept).
    pub disabled: Vec<Builtin>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            privacy: Privacy::Redacted,
            patterns: Vec::new(),
            drop: default_drop_rules(),
            disabled: Vec::new(),
        }
    }
}

/// Files whose whole content is a secret or a list of them.
/// `*.env` holds the environment files named by their stage (`prod.env`,
/// `staging.env`), which `.env*` misses.
const SECRET_FILES: [&str; 7] = [
    ".env*", "*.env", "*.pem", "*.key", "id_*", ".netrc", ".pgpass",
];

/// The drop rules used when the config names none: what `Read` returns of a
/// secret file, and what `Write`/`Edit` put into one.
pub fn default_drop_rules() -> Vec<DropRule> {
    let strings = |items: &[&'static str]| items.iter().map(|&item| Cow::Borrowed(item)).collect();
    vec![
        DropRule {
            tools: strings(&["Read"]),
            files: strings(&SECRET_FILES),
            paths: strings(&["tool_response"]),
        },
        DropRule {
            tools: strings(&["Write", "Edit", "MultiEdit"]),
            files: strings(&SECRET_FILES),
            paths: strings(&[
                "tool_input.content",
                "tool_input.old_string",
                "tool_input.new_string",
                "tool_input.edits",
                "tool_response",
            ]),
        },
    ]
}

/// Builds the settings from the file's `privacy` and `redact` values and the
/// `HOOKTRAIL_PRIVACY` variable. Appends to `origins` what did not come from
/// the defaults and to `problems` every entry it had to ignore.
pub fn from_config(
    file_privacy: Option<String>,
    file_redact: Option<Value>,
    env_privacy: Option<String>,
    origins: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Settings {
    let mut settings = Settings::default();
    for (value, origin) in [
        (file_privacy, "privacy: from the config file"),
        (env_privacy, "privacy: from $HOOKTRAIL_PRIVACY"),
    ] {
        if let Some(text) = value {
            match Privacy::parse(&text) {
                Some(privacy) => {
                    settings.privacy = privacy;
                    origins.push(origin.to_owned());
                }
                None => problems.push(format!(
                    "{origin}: unknown privacy level {text:?} (use \"full\", \"redacted\" or \"metadata\"); keeping {:?}",
                    settings.privacy.as_str()
                )),
            }
        }
    }
    let Some(redact) = file_redact else {
        return settings;
    };
    let Value::Object(redact) = redact else {
        problems.push("redact: not an object; ignoring it".to_owned());
        return settings;
    };
    origins.push("redact: from the config file".to_owned());
    if let Some(patterns) = redact.get("patterns") {
        for (index, entry) in as_list(patterns).iter().enumerate() {
            match parse_pattern(entry) {
                Ok(pattern) => settings.patterns.push(pattern),
                Err(why) => problems.push(format!("redact.patterns[{index}]: {why}; ignoring it")),
            }
        }
    }
    if let Some(drop) = redact.get("drop") {
        settings.drop.clear();
        for (index, entry) in as_list(drop).iter().enumerate() {
            match parse_drop(entry) {
                Ok(rule) => settings.drop.push(rule),
                Err(why) => problems.push(format!("redact.drop[{index}]: {why}; ignoring it")),
            }
        }
    }
    if let Some(disable) = redact.get("disable") {
        for entry in as_list(disable) {
            match entry.as_str().and_then(Builtin::from_name) {
                Some(rule) => settings.disabled.push(rule),
                None => problems.push(format!(
                    "redact.disable: {entry} is not a built-in rule (see `hooktrail-emit check`); ignoring it"
                )),
            }
        }
    }
    settings
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn strings(value: Option<&Value>) -> Result<Vec<Cow<'static, str>>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Cow::Owned(text.clone())]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|text| Cow::Owned(text.to_owned()))
                    .ok_or_else(|| format!("{item} is not a string"))
            })
            .collect(),
        Some(other) => Err(format!("{other} is not a string or a list of strings")),
    }
}

fn parse_pattern(entry: &Value) -> Result<UserPattern, String> {
    let field = |name: &str| entry.get(name);
    let name = field("name")
        .and_then(Value::as_str)
        .ok_or("needs a \"name\"")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "name {name:?} must be letters, digits, '-', '_' or '.'"
        ));
    }
    let prefix = field("prefix")
        .and_then(Value::as_str)
        .ok_or("needs a \"prefix\"")?;
    if prefix.is_empty() {
        return Err("\"prefix\" must not be empty".to_owned());
    }
    let chars_text = field("chars")
        .and_then(Value::as_str)
        .unwrap_or("A-Za-z0-9_-");
    let chars = parse_charset(chars_text)?;
    let number = |key: &str, default: usize| -> Result<usize, String> {
        match field(key) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("\"{key}\" must be a whole number")),
        }
    };
    let min_len = number("min_len", 8)?;
    let max_len = number("max_len", 256)?;
    if max_len < min_len {
        return Err("\"max_len\" is below \"min_len\"".to_owned());
    }
    Ok(UserPattern {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        chars,
        min_len,
        max_len,
        chars_text: chars_text.to_owned(),
    })
}

fn parse_drop(entry: &Value) -> Result<DropRule, String> {
    if !entry.is_object() {
        return Err("must be an object with \"paths\" (and \"tools\", \"files\")".to_owned());
    }
    let tools = strings(entry.get("tools").or_else(|| entry.get("tool")))?;
    let files = strings(entry.get("files").or_else(|| entry.get("file")))?;
    let paths = strings(entry.get("paths").or_else(|| entry.get("path")))?;
    if paths.is_empty() {
        return Err("needs \"paths\" (for example [\"tool_response\"])".to_owned());
    }
    if paths
        .iter()
        .any(|path| path.is_empty() || path.split('.').any(str::is_empty))
    {
        return Err("a path is empty or has an empty part".to_owned());
    }
    Ok(DropRule {
        tools,
        files,
        paths,
    })
}

/// Matches `name` against a glob with `*` (any run) and `?` (one character).
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    let (mut g, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if g < glob.len() && (glob[g] == b'?' || glob[g] == name[n]) {
            g += 1;
            n += 1;
        } else if g < glob.len() && glob[g] == b'*' {
            backtrack = Some((g, n));
            g += 1;
        } else if let Some((star, matched)) = backtrack {
            g = star + 1;
            n = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_matches(".env*", ".env"));
        assert!(glob_matches(".env*", ".env.local"));
        assert!(glob_matches("*.pem", "server.pem"));
        assert!(glob_matches("id_*", "id_ed25519"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("*.pem", "server.pem.txt"));
        assert!(!glob_matches(".env*", "my.env"));
        assert!(glob_matches("*", ""));
    }

    #[test]
    fn config_section_parses_and_reports_mistakes() {
        let (mut origins, mut problems) = (Vec::new(), Vec::new());
        let settings = from_config(
            Some("metadata".into()),
            Some(json!({
                "patterns": [{"name": "acme", "prefix": "acme_", "chars": "a-z0-9", "min_len": 10},
                             {"prefix": "nameless_"}],
                "drop": [{"tools": "Read", "files": ["*.secret"], "paths": ["tool_response"]}, {"tools": ["X"]}],
                "disable": ["jwt", "no-such-rule"]
            })),
            None,
            &mut origins,
            &mut problems,
        );
        assert_eq!(settings.privacy, Privacy::Metadata);
        assert_eq!(settings.patterns.len(), 1);
        assert_eq!(settings.patterns[0].min_len, 10);
        assert_eq!(settings.drop.len(), 1);
        assert_eq!(settings.drop[0].tools, vec!["Read"]);
        assert_eq!(settings.disabled, vec![Builtin::Jwt]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let settings = from_config(
            None,
            None,
            Some("nonsense".into()),
            &mut origins,
            &mut problems,
        );
        assert_eq!(settings, Settings::default());
        assert_eq!(problems.len(), 4);
    }
}
