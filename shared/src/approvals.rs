//! The `approvals` configuration (DESIGN §4, issue 18): whether and how long
//! a `PermissionRequest` hook waits for a decision made on the page.
//!
//! ```json
//! {"approvals": {"wait": "never" | "always" | "away", "wait_seconds": 120,
//!                "tools": ["Bash"], "key_file": "$XDG_CONFIG_HOME/hooktrail/approvals.key"}}
//! ```
//! Environment: `HOOKTRAIL_APPROVALS_WAIT`, `HOOKTRAIL_APPROVALS_WAIT_SECONDS`,
//! `HOOKTRAIL_APPROVALS_TOOLS` (comma-separated), `HOOKTRAIL_APPROVALS_KEY_FILE`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::paths::{self, EnvLookup};

/// How long a hook waits when `wait_seconds` is not given.
pub const DEFAULT_WAIT_SECONDS: u64 = 120;

/// The longest wait accepted: Claude Code's hook timeout must cover it, and
/// an agent held for more than an hour is better asked again.
pub const MAX_WAIT_SECONDS: u64 = 3600;

/// When a `PermissionRequest` hook waits for a remote decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Never: hooktrail stays a pure observer (the default).
    Never,
    /// Every time (headless and CI agents).
    Always,
    /// Only while the "away" switch is on for this machine or for all.
    Away,
}

impl WaitPolicy {
    /// Parses `never`, `always` or `away`.
    pub fn parse(text: &str) -> Option<WaitPolicy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "never" => Some(WaitPolicy::Never),
            "always" => Some(WaitPolicy::Always),
            "away" => Some(WaitPolicy::Away),
            _ => None,
        }
    }

    /// The name in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitPolicy::Never => "never",
            WaitPolicy::Always => "always",
            WaitPolicy::Away => "away",
        }
    }
}

/// The effective `approvals` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// When the hook waits.
    pub wait: WaitPolicy,
    /// How long it waits at most (also what `install` adds to the hook's
    /// timeout).
    pub wait_seconds: u64,
    /// Only requests for these tools wait; `None` means every tool.
    pub tools: Option<Vec<String>>,
    /// The shared HMAC key (0600); read by the hook only when it waits.
    pub key_file: PathBuf,
}

impl ApprovalsConfig {
    /// The defaults: never wait.
    pub fn defaults(env: EnvLookup) -> ApprovalsConfig {
        ApprovalsConfig {
            wait: WaitPolicy::Never,
            wait_seconds: DEFAULT_WAIT_SECONDS,
            tools: None,
            key_file: default_key_file(env),
        }
    }

    /// Whether a request for `tool` may wait at all (before the away switch).
    pub fn may_wait_for(&self, tool: Option<&str>) -> bool {
        if self.wait == WaitPolicy::Never {
            return false;
        }
        match (&self.tools, tool) {
            (None, _) => true,
            (Some(tools), Some(tool)) => tools.iter().any(|listed| listed == tool),
            (Some(_), None) => false,
        }
    }
}

/// `$XDG_CONFIG_HOME/hooktrail/approvals.key`.
pub fn default_key_file(env: EnvLookup) -> PathBuf {
    paths::default_config_file(env).with_file_name("approvals.key")
}

/// The `approvals` object as people write it; every key optional.
#[derive(Debug, Default, Deserialize)]
struct FileApprovals {
    wait: Option<String>,
    /// Any JSON value, checked here, so a bad number does not cost the file.
    wait_seconds: Option<serde_json::Value>,
    tools: Option<Vec<String>>,
    key_file: Option<String>,
}

/// Builds the settings from the file's `approvals` value and the
/// environment, noting where each came from and what was wrong.
pub(crate) fn from_config(
    file_value: Option<serde_json::Value>,
    env: EnvLookup,
    origins: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> ApprovalsConfig {
    let mut config = ApprovalsConfig::defaults(env);
    let file: FileApprovals = match file_value.map(serde_json::from_value) {
        None => FileApprovals::default(),
        Some(Ok(file)) => file,
        Some(Err(error)) => {
            problems.push(format!(
                "config file: approvals: {error}; approvals stay off"
            ));
            return config;
        }
    };
    for (value, origin) in [
        (file.wait, "approvals.wait: from the config file"),
        (
            env("HOOKTRAIL_APPROVALS_WAIT"),
            "approvals.wait: from $HOOKTRAIL_APPROVALS_WAIT",
        ),
    ] {
        if let Some(text) = value {
            match WaitPolicy::parse(&text) {
                Some(policy) => {
                    config.wait = policy;
                    origins.push(origin.to_owned());
                }
                None => problems.push(format!(
                    "{origin}: unknown value {text:?} (use \"never\", \"always\" or \"away\")"
                )),
            }
        }
    }
    let env_seconds = env("HOOKTRAIL_APPROVALS_WAIT_SECONDS").map(serde_json::Value::String);
    for (value, origin) in [
        (
            file.wait_seconds,
            "approvals.wait_seconds: from the config file",
        ),
        (
            env_seconds,
            "approvals.wait_seconds: from $HOOKTRAIL_APPROVALS_WAIT_SECONDS",
        ),
    ] {
        let Some(value) = value else { continue };
        let number = value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()));
        match number {
            Some(seconds) if (1..=MAX_WAIT_SECONDS).contains(&seconds) => {
                config.wait_seconds = seconds;
                origins.push(origin.to_owned());
            }
            _ => problems.push(format!(
                "{origin}: {value} is not a whole number of seconds from 1 to {MAX_WAIT_SECONDS}; using {}",
                config.wait_seconds
            )),
        }
    }
    if let Some(tools) = file.tools {
        origins.push("approvals.tools: from the config file".to_owned());
        config.tools = Some(tools);
    }
    if let Some(text) = env("HOOKTRAIL_APPROVALS_TOOLS") {
        origins.push("approvals.tools: from $HOOKTRAIL_APPROVALS_TOOLS".to_owned());
        config.tools = Some(
            text.split(',')
                .map(str::trim)
                .filter(|tool| !tool.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    if let Some(path) = env("HOOKTRAIL_APPROVALS_KEY_FILE").or(file.key_file) {
        origins.push("approvals.key_file: set".to_owned());
        config.key_file = paths::expand(&path, env);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(
        file: serde_json::Value,
        pairs: &'static [(&'static str, &'static str)],
    ) -> (ApprovalsConfig, Vec<String>) {
        let env = move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let (mut origins, mut problems) = (Vec::new(), Vec::new());
        let config = from_config(Some(file), &env, &mut origins, &mut problems);
        (config, problems)
    }

    #[test]
    fn approvals_default_to_never_with_the_key_under_the_config_dir() {
        let (config, problems) = load(json!({}), &[("XDG_CONFIG_HOME", "/c")]);
        assert!(problems.is_empty());
        assert_eq!(config.wait, WaitPolicy::Never);
        assert_eq!(config.wait_seconds, DEFAULT_WAIT_SECONDS);
        assert_eq!(config.key_file, PathBuf::from("/c/hooktrail/approvals.key"));
        assert!(!config.may_wait_for(Some("Bash")));
    }

    #[test]
    fn approvals_settings_come_from_the_file_and_the_environment() {
        let (config, problems) = load(
            json!({"wait": "always", "wait_seconds": 30, "tools": ["Bash"], "key_file": "/k"}),
            &[("HOOKTRAIL_APPROVALS_WAIT_SECONDS", "45")],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.wait, WaitPolicy::Always);
        assert_eq!(config.wait_seconds, 45);
        assert_eq!(config.key_file, PathBuf::from("/k"));
        assert!(config.may_wait_for(Some("Bash")));
        assert!(!config.may_wait_for(Some("Write")));
        assert!(!config.may_wait_for(None));
    }

    #[test]
    fn bad_approvals_values_are_reported_and_ignored() {
        let (config, problems) = load(
            json!({"wait": "sometimes", "wait_seconds": 99999}),
            &[("HOOKTRAIL_APPROVALS_WAIT", "away")],
        );
        assert_eq!(config.wait, WaitPolicy::Away);
        assert_eq!(config.wait_seconds, DEFAULT_WAIT_SECONDS);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (config, problems) = load(json!("yes"), &[]);
        assert_eq!(config.wait, WaitPolicy::Never);
        assert_eq!(problems.len(), 1);
    }
}
