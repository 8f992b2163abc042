//! The OTLP/HTTP receiver (issue 22, DESIGN §7a): Claude Code's own
//! OpenTelemetry logs and metrics, stored beside the hook events and joined
//! to the transcripts' usage by `request_id`.
//!
//! - `proto`: the vendored, prost-generated OTLP messages (with the JSON
//!   mapping's serde attributes).
//! - `decode`: a request body (protobuf or JSON, gzip or not, bounded) to a
//!   message; the answers' bodies.
//! - `records`: messages to what is stored ([`records::Batch`]), pure.
//! - `receiver`: the listener thread: token, rate and size bounds, the
//!   writer's queue, the answer once committed.
//!
//! Storing is `store::otel`, on the writer thread: the receiver hands each
//! export's records to the writer's queue in a submission without events
//! and answers only after the commit, so an exporter retries what the
//! collector did not store.

pub(crate) mod decode;
pub(crate) mod proto;
pub(crate) mod receiver;
#[cfg(test)]
mod receiver_tests;
pub(crate) mod records;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The address `--otlp on` listens on: loopback, OTLP/HTTP's port.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:4318";

/// Who may export to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtlpAuth {
    /// A loopback listener: every local process (as for the hooks' socket).
    Loopback,
    /// Off loopback: `Authorization: Bearer` with the API's token, as
    /// `OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer …"` sends it.
    Bearer(String),
}

/// The receiver's settings: `--otlp ADDR`, `$HOOKTRAIL_OTLP` or the config
/// file's `otlp.listen`.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub listen: SocketAddr,
    pub auth: OtlpAuth,
}

/// The config file's `otlp` object.
#[derive(serde::Deserialize, Default)]
struct FileOtlp {
    #[serde(default)]
    listen: Option<String>,
}

/// Reads the receiver's address, first of: `given` (the flag, else the
/// variable), the config file's `otlp.listen`. `None` (off, the default) when
/// none is set or the value is `off`; `on` is [`DEFAULT_LISTEN`]. A
/// non-loopback address needs `token` (`--token` or `$HOOKTRAIL_TOKEN`).
pub(crate) fn settings(
    file: Option<&Path>,
    given: Option<String>,
    token: Option<&str>,
) -> Result<Option<OtlpSettings>, String> {
    let from_file = || -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Top {
            #[serde(default)]
            otlp: Option<FileOtlp>,
        }
        let text = std::fs::read_to_string(file?).ok()?;
        serde_json::from_str::<Top>(&text).ok()?.otlp?.listen
    };
    let Some(text) = given.or_else(from_file) else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() || text == "off" {
        return Ok(None);
    }
    let text = if text == "on" { DEFAULT_LISTEN } else { text };
    let addresses: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("--otlp {text}: {error}"))?
        .collect();
    let listen = *addresses
        .first()
        .ok_or_else(|| format!("--otlp {text}: no address"))?;
    let auth = if addresses.iter().all(|address| address.ip().is_loopback()) {
        OtlpAuth::Loopback
    } else {
        match token {
            Some(token) => OtlpAuth::Bearer(token.to_owned()),
            None => {
                return Err(format!(
                    "refusing to receive OTLP on the non-loopback address {text} without a token: set $HOOKTRAIL_TOKEN (or --token), and send it as OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer <token>\""
                ))
            }
        }
    };
    Ok(Some(OtlpSettings { listen, auth }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_loopback_when_on_and_a_token_off_loopback() {
        assert!(settings(None, None, None).unwrap().is_none());
        assert!(settings(None, Some("off".into()), None).unwrap().is_none());
        let on = settings(None, Some("on".into()), None).unwrap().unwrap();
        assert_eq!(on.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(on.auth, OtlpAuth::Loopback);
        let error = settings(None, Some("0.0.0.0:4318".into()), None).unwrap_err();
        assert!(error.contains("without a token"), "{error}");
        let remote = settings(None, Some("0.0.0.0:4318".into()), Some("t"))
            .unwrap()
            .unwrap();
        assert_eq!(remote.auth, OtlpAuth::Bearer("t".into()));
    }

    #[test]
    fn the_config_file_key_applies_below_the_flag_or_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"otlp": {"listen": "127.0.0.1:4999"}}"#).unwrap();
        let from_file = settings(Some(&file), None, None).unwrap().unwrap();
        assert_eq!(from_file.listen.port(), 4999);
        let from_env = settings(Some(&file), Some("127.0.0.1:5000".into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(from_env.listen.port(), 5000);
        assert!(settings(Some(&file), Some("off".into()), None)
            .unwrap()
            .is_none());
    }
}
