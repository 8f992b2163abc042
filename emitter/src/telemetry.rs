//! `install --otel`: Claude Code's OpenTelemetry switched on, towards the
//! collector's OTLP receiver, in the settings file's `env` (issue 22).
//!
//! It adds each variable of [`wanted`] the user has not set (a value the
//! user set is kept, whatever it is), and lists the names it added in
//! `env.HOOKTRAIL_OTEL_ADDED`, in the same file, so `uninstall` removes
//! those and only those, even after the file moved between machines.
//! No token is written: a settings file is often world-readable and kept
//! in dotfiles; a remote receiver's `OTEL_EXPORTER_OTLP_HEADERS` is set by
//! hand (README, "Claude Code's OpenTelemetry").

use serde_json::{json, Map, Value};

/// The `env` key that lists the variables `install --otel` added.
pub const ADDED_KEY: &str = "HOOKTRAIL_OTEL_ADDED";

/// Where and how Claude Code exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the receiver's base URL
    /// (`--otel-endpoint`), else [`configured_endpoint`]'s.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` or `http/json`.
    pub protocol: String,
}

impl Default for Target {
    fn default() -> Target {
        Target {
            endpoint: None,
            protocol: "http/protobuf".to_owned(),
        }
    }
}

/// The receiver's default address (`--otlp on`).
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";

/// The collector's receiver as the shared config file names it
/// (`otlp.listen`, an address; `on` or an unspecified host is loopback), as
/// an endpoint URL; [`DEFAULT_ENDPOINT`] otherwise.
pub fn configured_endpoint(file: Option<&std::path::Path>) -> String {
    let listen = file
        // Bounded and regular-file only, like every config read: a FIFO
        // named as the config must not stall `install`.
        .and_then(|file| {
            hooktrail_shared::regular_file::read_to_string(
                file,
                hooktrail_shared::config::MAX_CONFIG_BYTES,
            )
            .ok()
        })
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|root| root["otlp"]["listen"].as_str().map(str::to_owned));
    match listen.as_deref().map(str::trim) {
        None | Some("") | Some("on") | Some("off") => DEFAULT_ENDPOINT.to_owned(),
        Some(address) => match address.rsplit_once(':') {
            Some(("0.0.0.0" | "[::]", port)) => format!("http://127.0.0.1:{port}"),
            _ => format!("http://{address}"),
        },
    }
}

/// The protocols the receiver takes (it has no gRPC).
pub const PROTOCOLS: [&str; 2] = ["http/protobuf", "http/json"];

/// Applies one of `install`'s flags `--otel`, `--otel-endpoint URL` and
/// `--otel-protocol P` (`value` reads the flag's value); any of them turns
/// the telemetry settings on.
pub fn take_flag(
    target: &mut Option<Target>,
    flag: &str,
    value: impl FnOnce() -> Result<String, String>,
) -> Result<(), String> {
    let target = target.get_or_insert_with(Target::default);
    match flag {
        "--otel-endpoint" => target.endpoint = Some(value()?),
        "--otel-protocol" => {
            let protocol = value()?;
            if !PROTOCOLS.contains(&protocol.as_str()) {
                return Err(format!(
                    "--otel-protocol: {protocol:?} is not http/protobuf or http/json"
                ));
            }
            target.protocol = protocol;
        }
        _ => {}
    }
    Ok(())
}

/// The variables `install --otel` sets: telemetry on, logs and metrics over
/// OTLP to `target`, and export intervals short enough for a live page
/// (Claude Code's defaults: 5 s for logs, 60 s for metrics).
pub fn wanted(target: &Target) -> Vec<(&'static str, String)> {
    vec![
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", target.protocol.clone()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            target
                .endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
        ),
        ("OTEL_LOGS_EXPORT_INTERVAL", "2000".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "10000".to_owned()),
    ]
}

/// The names listed in `env.HOOKTRAIL_OTEL_ADDED`.
fn added(env: &Map<String, Value>) -> Vec<String> {
    env.get(ADDED_KEY)
        .and_then(Value::as_str)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Adds the variables the user has not set; returns whether the settings
/// changed.
pub fn add(root: &mut Value, target: &Target) -> Result<bool, String> {
    let object = root
        .as_object_mut()
        .ok_or("settings are not a JSON object")?;
    let env = object
        .entry("env")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("\"env\" in the settings is not an object; not changing it")?;
    let mut ours = added(env);
    let mut changed = false;
    for (name, value) in wanted(target) {
        let mine = ours.iter().any(|added| added == name);
        match env.get(name) {
            // The user's own value stays.
            Some(_) if !mine => continue,
            Some(current) if current.as_str() == Some(value.as_str()) => continue,
            _ => {}
        }
        env.insert(name.to_owned(), Value::String(value));
        if !mine {
            ours.push(name.to_owned());
        }
        changed = true;
    }
    if changed {
        env.insert(ADDED_KEY.to_owned(), Value::String(ours.join(",")));
    }
    Ok(changed)
}

/// Removes the variables `add` added (listed in `HOOKTRAIL_OTEL_ADDED`),
/// the list, and `env` when that left it empty; returns whether the
/// settings changed.
pub fn remove(root: &mut Value) -> bool {
    let Some(object) = root.as_object_mut() else {
        return false;
    };
    let Some(env) = object.get_mut("env").and_then(Value::as_object_mut) else {
        return false;
    };
    if !env.contains_key(ADDED_KEY) {
        return false;
    }
    for name in added(env) {
        env.remove(&name);
    }
    env.remove(ADDED_KEY);
    if env.is_empty() {
        object.remove("env");
    }
    true
}

/// For `check`: each telemetry variable the settings set, and whether
/// `install --otel` added it.
pub fn shown(root: &Value) -> Vec<String> {
    let Some(env) = root.get("env").and_then(Value::as_object) else {
        return Vec::new();
    };
    let ours = added(env);
    wanted(&Target::default())
        .into_iter()
        .map(|(name, _)| name)
        .chain(["OTEL_EXPORTER_OTLP_HEADERS"])
        .filter_map(|name| {
            let value = env.get(name)?;
            let value = match name {
                // A header may hold the token: never printed.
                "OTEL_EXPORTER_OTLP_HEADERS" => "(set, not shown)".to_owned(),
                _ => value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned),
            };
            let origin = if ours.iter().any(|added| added == name) {
                "added by hooktrail"
            } else {
                "yours"
            };
            Some(format!("{name}={value} ({origin})"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_keeps_the_users_values_and_uninstall_removes_only_its_own() {
        let mut root =
            json!({"env": {"OTEL_LOGS_EXPORTER": "otlp,console", "MY_VAR": "x"}, "model": "opus"});
        let target = Target {
            endpoint: Some("http://127.0.0.1:4999".into()),
            protocol: "http/json".into(),
        };
        assert!(add(&mut root, &target).unwrap());
        let env = &root["env"];
        assert_eq!(env["OTEL_LOGS_EXPORTER"], "otlp,console");
        assert_eq!(env["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
        assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/json");
        assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4999");
        assert!(!env[ADDED_KEY]
            .as_str()
            .unwrap()
            .contains("OTEL_LOGS_EXPORTER"));
        // Idempotent.
        let before = root.clone();
        assert!(!add(&mut root, &target).unwrap());
        assert_eq!(root, before);
        // A new endpoint replaces the one it added.
        let moved = Target {
            endpoint: Some("http://127.0.0.1:5000".into()),
            ..target
        };
        assert!(add(&mut root, &moved).unwrap());
        assert_eq!(
            root["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "http://127.0.0.1:5000"
        );
        let shown = shown(&root);
        assert!(
            shown.contains(&"OTEL_LOGS_EXPORTER=otlp,console (yours)".to_owned()),
            "{shown:?}"
        );
        assert!(shown.contains(&"CLAUDE_CODE_ENABLE_TELEMETRY=1 (added by hooktrail)".to_owned()));
        assert!(remove(&mut root));
        assert_eq!(
            root,
            json!({"env": {"OTEL_LOGS_EXPORTER": "otlp,console", "MY_VAR": "x"}, "model": "opus"})
        );
        assert!(!remove(&mut root));
    }

    #[test]
    fn the_endpoint_follows_the_config_files_otlp_listen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        assert_eq!(configured_endpoint(None), DEFAULT_ENDPOINT);
        std::fs::write(&file, r#"{"otlp": {"listen": "127.0.0.1:4999"}}"#).unwrap();
        assert_eq!(configured_endpoint(Some(&file)), "http://127.0.0.1:4999");
        std::fs::write(&file, r#"{"otlp": {"listen": "0.0.0.0:4318"}}"#).unwrap();
        assert_eq!(configured_endpoint(Some(&file)), "http://127.0.0.1:4318");
        std::fs::write(&file, r#"{"otlp": {"listen": "on"}}"#).unwrap();
        assert_eq!(configured_endpoint(Some(&file)), DEFAULT_ENDPOINT);
    }

    #[test]
    fn an_env_it_created_goes_with_uninstall() {
        let mut root = json!({});
        assert!(add(&mut root, &Target::default()).unwrap());
        assert!(remove(&mut root));
        assert_eq!(root, json!({}));
    }
}
