//! Alerts to a phone, a chat or a script when a session needs you (issue
//! 20; DESIGN §4 `alerts`, §6 `outbox`, §7 `/api/alerts`).
//!
//! - [`config`]: the `alerts` and `public_url` keys, and the 0600 secret
//!   files they name (pure, read once at start).
//! - [`body`]: an alert's JSON, from stored (redacted) data, with invisible
//!   and bidi characters escaped (pure).
//! - `store/outbox.rs` (in the store folder, which holds all SQL): raising
//!   alerts in the writer's transaction, once per episode, and the
//!   notifier's delivery bookkeeping.
//! - [`notifier`]: one thread per destination, delivering in order with
//!   retries; [`deliver`]: one attempt (HTTP with `ureq`, or a program).
//!
//! `config` and `body` sit below `store` (the writer uses them, as it uses
//! `state` and `cost`); `notifier` and `deliver` above it, like `sources`.

pub(crate) mod body;
pub(crate) mod config;
pub(crate) mod deliver;
pub(crate) mod notifier;

pub use config::AlertSettings;

use std::io::Write;

/// `hooktrail-collector alert test NAME`: sends a sample alert to one
/// destination now (not through the outbox) and prints the receiver's
/// answer; returns the exit code.
pub(crate) fn send_test(settings: Option<&AlertSettings>, name: &str) -> i32 {
    let Some(settings) = settings else {
        crate::log::error("no alerts are configured (the config file's \"alerts\" key)");
        return 1;
    };
    let Some(destination) = settings
        .destinations
        .iter()
        .find(|known| known.name == name)
    else {
        let names: Vec<&str> = settings
            .destinations
            .iter()
            .map(|known| known.name.as_str())
            .collect();
        crate::log::error(&format!(
            "no destination named {name:?} (configured: {})",
            names.join(", ")
        ));
        return 1;
    };
    let now = hooktrail_shared::time::now_millis();
    let delivery_id = hooktrail_shared::envelope::new_event_id();
    let body = body::sample(&delivery_id, &settings.public_url, now);
    let sender = deliver::Sender::new(destination);
    let mut stdout = std::io::stdout();
    match sender.deliver(destination, &delivery_id, &body) {
        Ok(answer) => {
            let _ = writeln!(
                stdout,
                "delivered to {name} ({}), delivery id {delivery_id}: {answer}",
                destination.kind.as_str()
            );
            0
        }
        Err(error) => {
            let _ = writeln!(
                stdout,
                "NOT delivered to {name} ({}), delivery id {delivery_id}: {error}",
                destination.kind.as_str()
            );
            1
        }
    }
}
