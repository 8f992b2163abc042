//! `install` and `uninstall`: hooktrail's entries in Claude Code's settings.
//!
//! `install` adds, for every event in `HookEvent::OBSERVER_SAFE`, one group
//! with one exec-form entry (DESIGN §2):
//! `{"type":"command","command":"/abs/path/hooktrail-emit","args":[],"timeout":5}`,
//! with `"matcher":"*"` for tool events. It is idempotent, keeps every other
//! key and hook (in their order), writes a backup before changing the file,
//! and never registers `WorktreeCreate` or `MessageDisplay`. `uninstall`
//! removes only entries whose command is a `hooktrail-emit` binary, and the
//! groups and event lists that this leaves empty.
#![allow(
    clippy::print_stdout,
    reason = "install and uninstall report to a person"
)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::time::now_millis;
use serde_json::{json, Map, Value};

/// What to do to the settings file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add hooktrail's entries.
    Install,
    /// Remove hooktrail's entries.
    Uninstall,
}

/// Whether to write the result or only show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Write the file (with a backup).
    Apply,
    /// Print the result, write nothing (`--dry-run`).
    DryRun,
}

/// The timeout Claude Code gives each hook entry, in seconds: well above the
/// emitter's worst case (1 s Redis plus the socket's budget).
pub(crate) const TIMEOUT_SECONDS: u64 = 5;

/// The timeout of the `PermissionRequest` entry: when the config lets that
/// hook wait for a remote decision (`approvals.wait` not `never`), it covers
/// `approvals.wait_seconds` plus the usual budget, or Claude Code would end
/// the hook before its deadline. Changing `approvals` needs `install` again.
pub fn permission_request_timeout(approvals: &hooktrail_shared::approvals::ApprovalsConfig) -> u64 {
    match approvals.wait {
        hooktrail_shared::approvals::WaitPolicy::Never => TIMEOUT_SECONDS,
        _ => approvals.wait_seconds + TIMEOUT_SECONDS,
    }
}

/// The binary's file name, which marks an entry as hooktrail's.
const BINARY_NAME: &str = "hooktrail-emit";

/// Runs `install` or `uninstall` with their arguments; returns the exit code.
pub fn run(action: Action, arguments: &[String]) -> u8 {
    match execute(action, arguments) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("hooktrail-emit: {message}");
            1
        }
    }
}

fn execute(action: Action, arguments: &[String]) -> Result<(), String> {
    let mut scope = "user".to_owned();
    let mut settings: Option<PathBuf> = None;
    let mut mode = Effect::Apply;
    let mut beside_plugin = BesidePlugin::Refuse;
    let mut otel: Option<crate::telemetry::Target> = None;
    let mut iterator = arguments.iter();
    while let Some(argument) = iterator.next() {
        let (flag, inline) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (argument.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| iterator.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--scope" => scope = value("--scope")?,
            "--settings" => settings = Some(PathBuf::from(value("--settings")?)),
            "--dry-run" => mode = Effect::DryRun,
            "--force" => beside_plugin = BesidePlugin::RegisterAnyway,
            "--otel" | "--otel-endpoint" | "--otel-protocol" => {
                crate::telemetry::take_flag(&mut otel, flag, || value(flag))?
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let path = match settings {
        Some(path) => path,
        None => scope_path(&scope)?,
    };
    // Settings kept in a dotfiles repository are a link to it: write the
    // file the link names (the backup beside it), never over the link.
    let path = through_links(&path)?;
    let original = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    let mut root: Value = match original.as_deref() {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).map_err(|error| {
            format!(
                "{} is not valid JSON ({error}); not changing it",
                path.display()
            )
        })?,
        _ => json!({}),
    };
    if !root.is_object() {
        return Err(format!(
            "{} does not hold a JSON object; not changing it",
            path.display()
        ));
    }
    let changed = match action {
        Action::Install => {
            refuse_beside_the_plugin(beside_plugin)?;
            let binary = std::env::current_exe()
                .and_then(|path| path.canonicalize())
                .map_err(|error| format!("cannot find this binary's own path: {error}"))?;
            let config = hooktrail_shared::config::load().config;
            let hooks = install(
                &mut root,
                &binary.display().to_string(),
                permission_request_timeout(&config.approvals),
            )?;
            let telemetry = match otel {
                Some(mut target) => {
                    target.endpoint = target.endpoint.or_else(|| {
                        Some(crate::telemetry::configured_endpoint(
                            config.file.as_deref(),
                        ))
                    });
                    crate::telemetry::add(&mut root, &target)?
                }
                None => false,
            };
            hooks || telemetry
        }
        // Also the telemetry variables `install --otel` added, if any.
        Action::Uninstall => uninstall(&mut root)? | crate::telemetry::remove(&mut root),
    };
    let text = serde_json::to_string_pretty(&root).unwrap_or_default() + "\n";
    if mode == Effect::DryRun {
        print!("{text}");
        eprintln!(
            "hooktrail-emit: dry run: {} would {}; nothing written",
            path.display(),
            if changed {
                "change as shown"
            } else {
                "stay as it is"
            }
        );
        return Ok(());
    }
    if !changed {
        println!(
            "{}: already {}; nothing changed",
            path.display(),
            done_word(action)
        );
        return Ok(());
    }
    let backup = match &original {
        Some(text) => Some(write_backup(&path, text)?),
        None => None,
    };
    write_atomically(&path, &text)?;
    println!("{}: hooktrail {}", path.display(), done_word(action));
    if let Some(backup) = backup {
        println!("backup of the previous file: {}", backup.display());
    }
    Ok(())
}

/// What `install` does while the hooktrail plugin is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BesidePlugin {
    /// Refuse: every event would arrive twice (the default).
    Refuse,
    /// Register all the same (`--force`).
    RegisterAnyway,
}

/// Every event would arrive twice with the plugin and these entries both
/// active (`crate::plugin`), so `install` refuses unless `--force`.
fn refuse_beside_the_plugin(beside_plugin: BesidePlugin) -> Result<(), String> {
    let active = crate::plugin::activations(
        &existing_settings_files(),
        crate::plugin::installed_plugins_file(),
    );
    match active.first() {
        Some(where_) if beside_plugin == BesidePlugin::Refuse => Err(format!(
            "{where_}: it registers these hooks already, and with both every event arrives twice. Use one: disable the plugin (claude plugin disable hooktrail) and run install again, or keep the plugin; --force registers both anyway"
        )),
        _ => Ok(()),
    }
}

fn done_word(action: Action) -> &'static str {
    match action {
        Action::Install => "installed",
        Action::Uninstall => "uninstalled",
    }
}

fn scope_path(scope: &str) -> Result<PathBuf, String> {
    let cwd = || {
        std::env::current_dir()
            .map_err(|error| format!("cannot read the current directory: {error}"))
    };
    match scope {
        "user" => {
            let home = std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .ok_or_else(|| "HOME is not set; use --settings FILE".to_owned())?;
            Ok(PathBuf::from(home).join(".claude/settings.json"))
        }
        "project" => Ok(cwd()?.join(".claude/settings.json")),
        "local" => Ok(cwd()?.join(".claude/settings.local.json")),
        other => Err(format!(
            "unknown scope {other:?} (use user, project or local)"
        )),
    }
}

/// Whether a hook entry runs a `hooktrail-emit` binary.
fn is_ours(entry: &Value) -> bool {
    let command = entry.get("command").and_then(Value::as_str).unwrap_or("");
    let program = command.split_whitespace().next().unwrap_or("");
    let program = program.trim_matches(['"', '\'']);
    Path::new(program)
        .file_name()
        .is_some_and(|name| name == BINARY_NAME)
}

/// The group `install` writes for `event` (also the plugin's hooks.json, with
/// the default timeout).
pub(crate) fn our_group(event: HookEvent, binary: &str, permission_request_timeout: u64) -> Value {
    let timeout = match event {
        HookEvent::PermissionRequest => permission_request_timeout,
        _ => TIMEOUT_SECONDS,
    };
    let entry = json!({"type": "command", "command": binary, "args": [], "timeout": timeout});
    if event.takes_matcher() {
        json!({"matcher": "*", "hooks": [entry]})
    } else {
        json!({"hooks": [entry]})
    }
}

/// Merges hooktrail's entries into `root`; returns whether anything changed.
/// `permission_request_timeout` is [`permission_request_timeout`]'s.
pub fn install(
    root: &mut Value,
    binary: &str,
    permission_request_timeout: u64,
) -> Result<bool, String> {
    let object = root
        .as_object_mut()
        .ok_or("settings are not a JSON object")?;
    let hooks = object.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks
        .as_object_mut()
        .ok_or("\"hooks\" in the settings is not an object; not changing it")?;
    let mut changed = false;
    // Entries under events hooktrail must not hook (from an old version or a
    // hand edit) are removed.
    let unsafe_events: Vec<String> = hooks
        .keys()
        .filter(|name| {
            !HookEvent::OBSERVER_SAFE
                .iter()
                .any(|event| event.name() == name.as_str())
        })
        .cloned()
        .collect();
    for name in unsafe_events {
        changed |= remove_ours(hooks, &name);
    }
    for &event in HookEvent::OBSERVER_SAFE {
        let wanted = our_group(event, binary, permission_request_timeout);
        let groups = hooks.get(event.name()).and_then(Value::as_array);
        let ours: Vec<&Value> = groups
            .map(|groups| {
                groups
                    .iter()
                    .filter(|group| group_entries(group).any(is_ours))
                    .collect()
            })
            .unwrap_or_default();
        if ours.len() == 1 && *ours[0] == wanted {
            continue;
        }
        // Missing, duplicated or stale (another path, another shape): replace.
        remove_ours(hooks, event.name());
        let groups = hooks.entry(event.name()).or_insert_with(|| json!([]));
        let groups = groups.as_array_mut().ok_or_else(|| {
            format!(
                "\"hooks.{}\" in the settings is not a list; not changing it",
                event.name()
            )
        })?;
        groups.push(wanted);
        changed = true;
    }
    Ok(changed)
}

/// Which of the events `install` registers hold a hooktrail entry in
/// `root`, and which do not.
pub struct Registration {
    /// Events with a hooktrail entry.
    pub registered: Vec<&'static str>,
    /// Events `install` would add.
    pub missing: Vec<&'static str>,
}

/// Reads what a settings file registers (for `check`).
pub fn registration(root: &Value) -> Registration {
    let hooks = root.get("hooks").and_then(Value::as_object);
    let (registered, missing) = HookEvent::OBSERVER_SAFE
        .iter()
        .map(|event| event.name())
        .partition(|name| {
            hooks
                .and_then(|hooks| hooks.get(*name))
                .and_then(Value::as_array)
                .is_some_and(|groups| groups.iter().any(|group| group_entries(group).any(is_ours)))
        });
    Registration {
        registered,
        missing,
    }
}

/// The settings file of each scope that exists, for `check`.
pub fn existing_settings_files() -> Vec<(&'static str, PathBuf)> {
    ["user", "project", "local"]
        .into_iter()
        .filter_map(|scope| Some((scope, scope_path(scope).ok()?)))
        .filter(|(_, path)| path.exists())
        .collect()
}

/// Removes hooktrail's entries from `root`; returns whether anything changed.
pub fn uninstall(root: &mut Value) -> Result<bool, String> {
    let object = root
        .as_object_mut()
        .ok_or("settings are not a JSON object")?;
    let Some(hooks) = object.get_mut("hooks").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let names: Vec<String> = hooks.keys().cloned().collect();
    let mut changed = false;
    for name in names {
        changed |= remove_ours(hooks, &name);
    }
    if changed && hooks.is_empty() {
        object.remove("hooks");
    }
    Ok(changed)
}

fn group_entries(group: &Value) -> impl Iterator<Item = &Value> {
    group
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Removes hooktrail's entries under one event, then the groups and the event
/// list that this left empty (and only those).
fn remove_ours(hooks: &mut Map<String, Value>, event: &str) -> bool {
    let Some(groups) = hooks.get_mut(event).and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    groups.retain_mut(|group| {
        let Some(entries) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let before = entries.len();
        entries.retain(|entry| !is_ours(entry));
        if entries.len() == before {
            return true;
        }
        changed = true;
        !entries.is_empty()
    });
    if changed && groups.is_empty() {
        hooks.remove(event);
    }
    changed
}

/// The file `path` names once every symbolic link on the way is followed
/// (`path` itself when it is no link, or a link to a file not made yet).
fn through_links(path: &Path) -> Result<PathBuf, String> {
    let mut path = path.to_path_buf();
    // The kernel's own limit on links in one lookup (ELOOP).
    for _ in 0..40 {
        let target = match fs::read_link(&path) {
            Ok(target) => target,
            Err(error) if error.kind() == std::io::ErrorKind::InvalidInput => return Ok(path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(path),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        path = match path.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    Err(format!(
        "{}: too many levels of symbolic links",
        path.display()
    ))
}

fn write_backup(path: &Path, text: &str) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backup = path.with_file_name(format!("{name}.hooktrail-backup-{}", now_millis()));
    let mode = fs::metadata(path)
        .map(|metadata| metadata.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&backup)
        .map_err(|error| format!("cannot write the backup {}: {error}", backup.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|error| format!("cannot write the backup {}: {error}", backup.display()))?;
    Ok(backup)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    let mode = fs::metadata(path)
        .map(|metadata| metadata.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.hooktrail-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))?;
        fs::rename(&temporary, path)
    })();
    result.map_err(|error| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write {}: {error}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings' entries for `event`.
    fn entries(settings: &Value, event: HookEvent) -> &Value {
        &settings["hooks"][event.name()]
    }

    #[test]
    fn install_is_idempotent_and_uninstall_restores() {
        let original = json!({
            "model": "opus",
            "hooks": {
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/bin/guard"}]}],
                "WorktreeCreate": [{"hooks": [{"type": "command", "command": "/old/hooktrail-emit"}]}]
            },
            "z": 1
        });
        let mut settings = original.clone();
        assert!(install(&mut settings, "/bin/hooktrail-emit", TIMEOUT_SECONDS).unwrap());
        assert!(settings["hooks"]
            .get(HookEvent::WorktreeCreate.name())
            .is_none());
        assert_eq!(
            entries(&settings, HookEvent::PreToolUse)
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(entries(&settings, HookEvent::PreToolUse)[1]["matcher"], "*");
        assert!(entries(&settings, HookEvent::Stop)[0]
            .get("matcher")
            .is_none());
        let once = settings.clone();
        assert!(!install(&mut settings, "/bin/hooktrail-emit", TIMEOUT_SECONDS).unwrap());
        assert_eq!(settings, once);
        // A moved binary replaces the old path instead of adding a second entry.
        assert!(install(&mut settings, "/new/hooktrail-emit", TIMEOUT_SECONDS).unwrap());
        assert_eq!(
            entries(&settings, HookEvent::Stop)
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(uninstall(&mut settings).unwrap());
        let mut expected = original;
        expected["hooks"]
            .as_object_mut()
            .unwrap()
            .remove(HookEvent::WorktreeCreate.name());
        assert_eq!(settings, expected);
        let keys: Vec<&String> = settings.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["model", "hooks", "z"]);
    }

    #[test]
    fn install_gives_a_waiting_permission_request_a_timeout_that_covers_the_wait() {
        let mut approvals = hooktrail_shared::approvals::ApprovalsConfig::defaults(&|_| None);
        assert_eq!(permission_request_timeout(&approvals), TIMEOUT_SECONDS);
        approvals.wait = hooktrail_shared::approvals::WaitPolicy::Always;
        approvals.wait_seconds = 120;
        let timeout = permission_request_timeout(&approvals);
        assert!(timeout > 120, "{timeout}");
        let mut settings = json!({});
        assert!(install(&mut settings, "/bin/hooktrail-emit", timeout).unwrap());
        assert_eq!(
            entries(&settings, HookEvent::PermissionRequest)[0]["hooks"][0]["timeout"],
            json!(timeout)
        );
        assert_eq!(
            entries(&settings, HookEvent::PreToolUse)[0]["hooks"][0]["timeout"],
            json!(TIMEOUT_SECONDS)
        );
    }
}
