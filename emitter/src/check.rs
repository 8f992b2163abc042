//! `check`: tells a person where the configuration came from, what is
//! redacted, and whether each delivery path works right now, then what a hook
//! would do.
//!
//! It never sends an event: Redis gets `PING` and a look at the key (`TYPE`
//! for the stream, `PUBSUB NUMSUB` for the channel), the socket gets a connect,
//! and the spool a probe file. Exit code 1 when neither Redis nor the socket
//! takes events (they would pile up in the spool), or when the config has an
//! error (hooks then fall back to the `metadata` privacy level); 0
//! otherwise.
#![allow(clippy::print_stdout, reason = "check reports to a person")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hooktrail_shared::config::{self, redact_url, RedisConfig, Transport};
use hooktrail_shared::{paths, spool};

use crate::breaker;
use crate::deadline::Deadline;
use crate::install;
use crate::redis::{encode, Connection, Reply, Target};
use crate::socket;

/// Runs `check`; returns the exit code.
pub fn run(arguments: &[String]) -> u8 {
    if let Some(argument) = arguments.first() {
        eprintln!("hooktrail-emit check takes no arguments (got {argument:?})");
        return 2;
    }
    let loaded = config::load();
    let config = &loaded.config;
    print_configuration(&loaded);

    println!();
    crate::redact::describe(&config.redaction);

    println!();
    let redis_works = match &config.redis {
        None => {
            println!("Redis: not configured (set redis.url or HOOKTRAIL_REDIS_URL to use it)");
            false
        }
        Some(redis) => check_redis(redis, &config.state_dir),
    };

    let socket_works = match socket::connect(&config.socket) {
        Ok(_) => {
            println!(
                "Socket {}: a collector is listening",
                config.socket.display()
            );
            true
        }
        Err(error) => {
            println!("Socket {}: no collector ({error})", config.socket.display());
            false
        }
    };

    let spool_dir = &config.spool_dir;
    let spool_works = match spool_writable(spool_dir) {
        Ok(()) => {
            let mode = std::fs::metadata(spool_dir)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            let waiting = if spool::has_pending(spool_dir) {
                "; it may hold events waiting to be forwarded"
            } else {
                ""
            };
            println!(
                "Spool {}: writable, mode {mode:04o}{waiting}",
                spool_dir.display()
            );
            true
        }
        Err(error) => {
            println!("Spool {}: NOT writable: {error}", spool_dir.display());
            false
        }
    };
    // Events a hook could not put in the configured spool wait here, where
    // neither forwarding nor the collector looks: tell the person.
    let fallback =
        hooktrail_shared::paths::fallback_spool_dir(&hooktrail_shared::paths::process_env);
    if &fallback != spool_dir && spool::has_pending(&fallback) {
        println!(
            "Fallback spool {}: holds events the configured spool refused; move its spool-*.jsonl files into a spool a collector drains",
            fallback.display()
        );
    }

    println!();
    let breaker_open = matches!(
        breaker::state(&config.state_dir),
        breaker::State::Open { .. }
    );
    let verdict = if redis_works && !breaker_open {
        "send it to Redis".to_owned()
    } else if socket_works {
        "send it to the collector's socket".to_owned()
    } else if spool_works {
        format!(
            "write it to the spool in {} (until Redis or a collector takes it)",
            spool_dir.display()
        )
    } else if &fallback != spool_dir && spool_writable(&fallback).is_ok() {
        format!(
            "write it to the fallback spool in {} (nothing forwards it from there)",
            fallback.display()
        )
    } else {
        "LOSE it: no delivery path works".to_owned()
    };
    println!("A hook now would {verdict}.");
    print_registration();
    if (redis_works || socket_works) && !config.config_error {
        0
    } else {
        1
    }
}

/// Prints where each setting came from, the problems loading found and what
/// a config error does to privacy.
fn print_configuration(loaded: &config::LoadedConfig) {
    let config = &loaded.config;
    println!("Configuration");
    for origin in &loaded.origins {
        println!("  {origin}");
    }
    println!(
        "  mode: {}",
        if config.redis.is_some() {
            "redis"
        } else {
            "local"
        }
    );
    if loaded.problems.is_empty() {
        println!("  problems: none");
    } else {
        println!("  problems:");
        for problem in &loaded.problems {
            println!("    - {problem}");
        }
    }
    for error in &loaded.errors {
        println!("  CONFIG ERROR: {error}");
    }
    if config.config_error {
        println!("  until it is fixed, hooks send only metadata (privacy \"metadata\") and mark every event with config_error");
    }
}

/// Prints, for each Claude Code settings file that exists, which events
/// hooktrail is registered for and which `install` would add.
fn print_registration() {
    println!();
    let files = install::existing_settings_files();
    let plugin = crate::plugin::activations(&files, crate::plugin::installed_plugins_file());
    for where_ in &plugin {
        println!("Plugin: {where_}");
    }
    if files.is_empty() {
        println!("Hooks: no Claude Code settings file found; run `hooktrail-emit install`");
        return;
    }
    for (scope, path) in files {
        let root = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        let Some(root) = root else {
            println!(
                "Hooks in {} ({scope}): unreadable or not JSON",
                path.display()
            );
            continue;
        };
        let found = install::registration(&root);
        println!(
            "Hooks in {} ({scope}): {} of {} events registered",
            path.display(),
            found.registered.len(),
            found.registered.len() + found.missing.len()
        );
        if !found.registered.is_empty() {
            println!("  registered: {}", found.registered.join(", "));
            if !plugin.is_empty() {
                println!("  WARNING: the hooktrail plugin registers these events too: every event arrives twice; keep one (`hooktrail-emit uninstall --scope {scope}`, or disable the plugin)");
            }
        }
        if !found.missing.is_empty() {
            println!(
                "  missing: {} (run `hooktrail-emit install --scope {scope}`)",
                found.missing.join(", ")
            );
        }
        let telemetry = crate::telemetry::shown(&root);
        if !telemetry.is_empty() {
            println!("  OpenTelemetry (env): {}", telemetry.join(", "));
        }
    }
}

/// Connects, authenticates and looks at the key; prints what it found.
fn check_redis(redis: &RedisConfig, state_dir: &std::path::Path) -> bool {
    let url = redact_url(&redis.url);
    println!(
        "Redis {url} ({}, key {:?})",
        redis.transport.as_str(),
        redis.key
    );
    match breaker::state(state_dir) {
        breaker::State::Open { remaining, reason } => println!(
            "  breaker: OPEN for {} s more (hooks skip Redis until then): {reason}",
            remaining.as_secs()
        ),
        breaker::State::Expired => println!("  breaker: expired; the next hook tries Redis again"),
        breaker::State::Closed => println!("  breaker: closed"),
    }
    if let Some(ca_file) = &redis.ca_file {
        println!("  CA file: {}", ca_file.display());
    }
    let target = match Target::parse(&redis.url) {
        Ok(target) => target,
        Err(error) => {
            println!("  FAILS: {error}");
            return false;
        }
    };
    let started = std::time::Instant::now();
    let deadline = Deadline::after(Duration::from_secs(2));
    let mut connection = match Connection::open(&target, redis.ca_file.as_deref(), deadline) {
        Ok(connection) => connection,
        Err(failure) => {
            println!("  FAILS: {failure}");
            return false;
        }
    };
    let mut commands = Vec::new();
    encode(&mut commands, &[b"PING"]);
    match redis.transport {
        Transport::Stream => encode(&mut commands, &[b"TYPE", redis.key.as_bytes()]),
        Transport::PubSub => encode(&mut commands, &[b"PUBSUB", b"NUMSUB", redis.key.as_bytes()]),
    }
    let replies = match connection.request(&commands, 2) {
        Ok(replies) => replies,
        Err(failure) => {
            println!("  FAILS: {failure}");
            return false;
        }
    };
    println!("  PING answered in {} ms", started.elapsed().as_millis());
    match (redis.transport, replies.get(1)) {
        (Transport::Stream, Some(Reply::Simple(kind))) if kind == "stream" || kind == "none" => {
            println!("  key {:?}: {kind} (XADD will work)", redis.key);
            true
        }
        (Transport::Stream, Some(Reply::Simple(kind))) => {
            println!(
                "  FAILS: key {:?} holds a {kind}, not a stream; XADD would be refused",
                redis.key
            );
            false
        }
        (Transport::PubSub, Some(Reply::Array(Some(items)))) => {
            let subscribers = match items.get(1) {
                Some(Reply::Integer(count)) => *count,
                _ => 0,
            };
            println!("  channel {:?}: {subscribers} subscriber(s) now", redis.key);
            if subscribers == 0 {
                println!("  (PUBLISH to no subscriber is not a delivery: hooks fall through to the socket)");
            }
            subscribers > 0
        }
        (_, other) => {
            println!("  FAILS: unexpected reply {other:?}");
            false
        }
    }
}

/// Whether hooks could spool into `dir`: creates it (0700) if needed and
/// writes and removes a probe file.
fn spool_writable(dir: &Path) -> Result<(), String> {
    paths::ensure_private_dir(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let probe = dir.join(format!(".check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|error| format!("cannot write in {}: {error}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
