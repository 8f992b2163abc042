//! One delivery attempt to one destination: an HTTP POST (`ureq` with
//! rustls) for `webhook`, `slack` and `ntfy`, a program for `command`.
//!
//! - `webhook`: the alert's JSON, `X-Hooktrail-Signature: sha256=<HMAC-SHA256
//!   hex of the body>` (key from `secret_file`) and `X-Hooktrail-Delivery:
//!   <delivery id>` (the same on every retry: the receiver's idempotency key).
//! - `slack`: `{"text": summary + link}` to the incoming-webhook URL.
//! - `ntfy`: the summary as the message, `Title`, `Click` (the deep link),
//!   `Authorization: Bearer` with the token when there is one.
//! - `command`: argv run without a shell, the alert's JSON on stdin,
//!   `HOOKTRAIL_DELIVERY_ID` in its environment, killed (its whole process
//!   group) at the timeout; exit status 0 is delivered.
//!
//! A 2xx answer is delivered; anything else is an error to retry. Error
//! texts have the destination's secrets (URL, token) blanked out before
//! they are stored or logged.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::alerts::config::{Destination, DestinationKind};

/// Most bytes of an answer kept (stored with the alert, printed by `alert
/// test`).
const MAX_ANSWER_BYTES: usize = 2048;

/// The HTTP client of one destination (its timeout), reused across attempts.
pub(crate) struct Sender {
    /// `ureq`'s agent: connection pool, timeouts, no redirects.
    agent: ureq::Agent,
}

impl Sender {
    /// A client whose every request ends within `destination.timeout`.
    pub(crate) fn new(destination: &Destination) -> Sender {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(destination.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("hooktrail-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Sender { agent }
    }

    /// Delivers `body` (the alert's JSON) once. `Ok` holds the receiver's
    /// answer (status and the start of its body).
    pub(crate) fn deliver(
        &self,
        destination: &Destination,
        delivery_id: &str,
        body: &str,
    ) -> Result<String, String> {
        let result = match &destination.kind {
            DestinationKind::Webhook { url, secret } => self.post(
                url,
                &[
                    ("Content-Type", "application/json".to_owned()),
                    (
                        "X-Hooktrail-Signature",
                        format!("sha256={}", sign(secret, body.as_bytes())),
                    ),
                    ("X-Hooktrail-Delivery", delivery_id.to_owned()),
                ],
                body.as_bytes(),
            ),
            DestinationKind::Slack { url } => {
                let text = serde_json::json!({ "text": human_text(body) }).to_string();
                self.post(
                    url,
                    &[("Content-Type", "application/json".to_owned())],
                    text.as_bytes(),
                )
            }
            DestinationKind::Ntfy { url, token } => {
                let alert: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                let mut headers = vec![
                    (
                        "Title",
                        format!("hooktrail: {}", alert["when"].as_str().unwrap_or("alert")),
                    ),
                    ("X-Hooktrail-Delivery", delivery_id.to_owned()),
                ];
                if let Some(link) = alert["url"].as_str() {
                    headers.push(("Click", link.to_owned()));
                }
                if let Some(token) = token {
                    headers.push(("Authorization", format!("Bearer {token}")));
                }
                let text = alert["summary"]
                    .as_str()
                    .unwrap_or("hooktrail alert")
                    .to_owned();
                self.post(url, &headers, text.as_bytes())
            }
            DestinationKind::Command { argv } => {
                run_command(argv, delivery_id, body, destination.timeout)
            }
        };
        result.map_err(|error| scrub(&error, &destination.kind.secrets()))
    }

    fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> Result<String, String> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request.send(body).map_err(|error| error.to_string())?;
        let status = response.status();
        let mut answer = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_ANSWER_BYTES as u64)
            .read_to_end(&mut answer);
        let answer = format!(
            "HTTP {} {}",
            status.as_u16(),
            String::from_utf8_lossy(&answer).trim()
        );
        if status.is_success() {
            Ok(answer)
        } else {
            Err(answer)
        }
    }
}

/// HMAC-SHA256 of `body` with `key`, in lower-case hex.
pub(crate) fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The summary and the link, for chat messages.
fn human_text(body: &str) -> String {
    let alert: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let summary = alert["summary"].as_str().unwrap_or("hooktrail alert");
    match alert["url"].as_str() {
        Some(link) => format!("hooktrail: {summary}\n{link}"),
        None => format!("hooktrail: {summary}"),
    }
}

/// `text` with each secret replaced by `[secret]`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        out = out.replace(secret, "[secret]");
        // The URL's path alone (a token in the path) may be quoted too.
        if let Some(path) = secret
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .filter(|path| path.len() > 1)
        {
            out = out.replace(path, "/[secret]");
        }
    }
    out
}

/// Runs `argv` without a shell, the alert on stdin; kills its process group
/// at `timeout`. `Ok` holds the start of its output.
fn run_command(
    argv: &[String],
    delivery_id: &str,
    body: &str,
    timeout: Duration,
) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let program = &argv[0];
    let mut child = Command::new(program)
        .args(&argv[1..])
        .env("HOOKTRAIL_DELIVERY_ID", delivery_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    let output = collect_output(&mut child);
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input is not an error.
        let _ = stdin.write_all(body.as_bytes());
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                // SAFETY: kill on the process group of a child we have not
                // reaped (its pid is the group id: process_group(0)).
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {timeout:?}; killed"
                ));
            }
            Ok(None) => {
                // Polls the child; the timeout is short and there is no
                // portable wait-with-timeout.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(format!("cannot wait for {program}: {error}")),
        }
    };
    let output = output
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    if status.success() {
        Ok(format!("exit 0 {}", output.trim()))
    } else {
        Err(format!("{program}: {status} {}", output.trim()))
    }
}

/// Reads the child's stdout and stderr on a thread (so a chatty program
/// never blocks on a full pipe), keeping their first bytes.
fn collect_output(child: &mut std::process::Child) -> crossbeam_channel::Receiver<String> {
    let (sender, receiver) = crossbeam_channel::bounded(1);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let _ = std::thread::Builder::new()
        .name("alerts-command".to_owned())
        .spawn(move || {
            let mut kept = Vec::new();
            for stream in [
                stdout.as_mut().map(|s| s as &mut dyn Read),
                stderr.as_mut().map(|s| s as &mut dyn Read),
            ]
            .into_iter()
            .flatten()
            {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    let room = MAX_ANSWER_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..read.min(room)]);
                }
            }
            let _ = sender.send(String::from_utf8_lossy(&kept).into_owned());
        });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_scrubbed_from_error_text() {
        let text = scrub(
            "error sending to https://hooks.example/T000/B000/XXXX: refused (/T000/B000/XXXX)",
            &["https://hooks.example/T000/B000/XXXX"],
        );
        assert!(!text.contains("XXXX"), "{text}");
    }

    #[test]
    fn a_command_runs_without_a_shell_and_reads_the_alert_on_stdin() {
        let destination = Destination {
            name: "c".into(),
            kind: DestinationKind::Command {
                argv: vec!["/bin/cat".into()],
            },
            timeout: Duration::from_secs(5),
            rate_per_minute: 10,
        };
        let sender = Sender::new(&destination);
        let answer = sender
            .deliver(&destination, "d", "{\"a\":\"$(echo no)\"}")
            .unwrap();
        assert_eq!(answer, "exit 0 {\"a\":\"$(echo no)\"}");
        let slow = Destination {
            kind: DestinationKind::Command {
                argv: vec!["/bin/sleep".into(), "30".into()],
            },
            timeout: Duration::from_millis(200),
            ..destination
        };
        let started = Instant::now();
        assert!(sender
            .deliver(&slow, "d", "{}")
            .unwrap_err()
            .contains("killed"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
