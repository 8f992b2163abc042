//! The hooktrail Claude Code plugin (`plugin/` in the repository), another
//! way to register the hook: it runs `hooktrail-emit` from `PATH` for the
//! same events, with the same timeouts, as `install` writes. With both, every
//! event arrives twice (two hook entries with different commands, which
//! Claude Code does not merge), so `install` refuses and `check` warns when
//! the plugin is active.
//!
//! Claude Code keeps a plugin's state in two places: `enabledPlugins` in a
//! settings file (`{"hooktrail@MARKETPLACE": true}`), and the installed
//! plugins in `plugins/installed_plugins.json` of its config directory; an
//! installed plugin without an explicit `false` starts enabled.

use std::path::PathBuf;

#[cfg(test)]
use hooktrail_shared::envelope::HookEvent;
use serde_json::Value;
#[cfg(test)]
use serde_json::{json, Map};

#[cfg(test)]
use crate::install;

/// The plugin's name in `plugin/.claude-plugin/plugin.json`, which Claude
/// Code uses as the first half of its key (`hooktrail@MARKETPLACE`).
const PLUGIN_NAME: &str = "hooktrail";

/// The plugin's `hooks/hooks.json`: `install`'s groups with the bare
/// command name, so the file cannot drift from what `install` writes (a
/// unit test compares it with the file in the repository).
#[cfg(test)]
fn hooks_file() -> Value {
    let hooks: Map<String, Value> = HookEvent::OBSERVER_SAFE
        .iter()
        .map(|&event| {
            (
                event.name().to_owned(),
                json!([install::our_group(
                    event,
                    "hooktrail-emit",
                    install::TIMEOUT_SECONDS
                )]),
            )
        })
        .collect();
    json!({
        "description": "hooktrail: records every hook event (generated from hooktrail-emit install's list; do not edit by hand)",
        "hooks": hooks,
    })
}

/// Whether a `enabledPlugins` key names this plugin, from any marketplace.
fn is_our_key(key: &str) -> bool {
    key.split('@').next() == Some(PLUGIN_NAME)
}

/// Where the plugin is active, one description each (empty: it is not).
/// `settings` are the settings files that exist, with their scope;
/// `installed` is Claude Code's list of installed plugins
/// ([`installed_plugins_file`]).
pub fn activations(
    settings: &[(&'static str, PathBuf)],
    installed: Option<PathBuf>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut disabled = false;
    for (scope, path) in settings {
        let Some(enabled) = read_json(path)
            .as_ref()
            .and_then(|root| root.get("enabledPlugins"))
            .and_then(Value::as_object)
            .cloned()
        else {
            continue;
        };
        for (key, value) in enabled.iter().filter(|(key, _)| is_our_key(key)) {
            match value {
                Value::Bool(false) => disabled = true,
                _ => found.push(format!(
                    "the hooktrail plugin ({key}) is enabled in {} ({scope})",
                    path.display()
                )),
            }
        }
    }
    if found.is_empty() && !disabled {
        if let Some(path) = installed {
            let installed = read_json(&path)
                .as_ref()
                .map(|root| root.get("plugins").unwrap_or(root))
                .and_then(Value::as_object)
                .is_some_and(|plugins| plugins.keys().any(|key| is_our_key(key)));
            if installed {
                found.push(format!(
                    "the hooktrail plugin is installed ({}) and not disabled",
                    path.display()
                ));
            }
        }
    }
    found
}

/// `plugins/installed_plugins.json` of Claude Code's config directory
/// (`$CLAUDE_CONFIG_DIR`, else `~/.claude`).
pub fn installed_plugins_file() -> Option<PathBuf> {
    let directory = std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".claude"))
        })?;
    Some(directory.join("plugins/installed_plugins.json"))
}

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file the plugin ships, in the repository.
    fn shipped_hooks_file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugin/hooks/hooks.json")
    }

    /// The plugin's hooks.json is `install`'s list: the same events, matchers
    /// and timeouts. `HOOKTRAIL_UPDATE_PLUGIN=1` rewrites it after a change
    /// to `install`.
    #[test]
    fn plugin_hooks_json_matches_what_install_writes() {
        let expected = serde_json::to_string_pretty(&hooks_file()).unwrap() + "\n";
        let path = shipped_hooks_file();
        if std::env::var_os("HOOKTRAIL_UPDATE_PLUGIN").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            shipped, expected,
            "plugin/hooks/hooks.json differs from install's list; run HOOKTRAIL_UPDATE_PLUGIN=1 cargo test -p hooktrail-emit plugin_hooks_json"
        );
    }

    #[test]
    fn an_enabled_or_installed_plugin_is_found_and_a_disabled_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("settings.json");
        let write = |text: &str| std::fs::write(&settings, text).unwrap();
        let installed = dir.path().join("installed_plugins.json");
        let files = [("user", settings.clone())];
        let found = |installed: Option<PathBuf>| activations(&files, installed);
        write(r#"{"enabledPlugins": {"other@x": true, "hooktrail@local": true}}"#);
        let enabled = found(None);
        assert_eq!(enabled.len(), 1, "{enabled:?}");
        assert!(enabled[0].contains("hooktrail@local"), "{enabled:?}");
        write(r#"{"enabledPlugins": {"hooktrailer@x": true}}"#);
        assert!(found(Some(installed.clone())).is_empty());
        // Installed and not disabled: enabled by default.
        std::fs::write(
            &installed,
            r#"{"version": 2, "plugins": {"hooktrail@local": [{}]}}"#,
        )
        .unwrap();
        assert_eq!(found(Some(installed.clone())).len(), 1);
        write(r#"{"enabledPlugins": {"hooktrail@local": false}}"#);
        assert!(found(Some(installed)).is_empty());
    }
}
