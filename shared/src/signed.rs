//! Signed messages from the collector to the hook: a remote approval's
//! decision (issue 18), later a budget's verdict. DESIGN §2 "Remote approval".
//!
//! The collector and the emitters of a user share one key, a 0600 file of 64
//! hex characters. A message names the event it answers, the session, a hash
//! of the tool call it answers, its verdict, who made it and an expiry, and
//! carries an HMAC-SHA256 over all of these. The hook acts only on a message
//! whose signature, kind, event, session, input hash and expiry all check
//! out: anyone who can write to Redis or the socket but holds no key can
//! approve nothing, and a decision cannot be replayed onto another request.
//!
//! The HMAC and SHA-256 come from the `hmac` and `sha2` crates; the
//! signature is compared with `Mac::verify_slice`, in constant time.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::paths;

/// The largest key file read: a key is 64 hex characters and a newline, so
/// anything much larger is not a key (and must not be read whole).
pub const KEY_FILE_MAX_BYTES: u64 = 4096;

/// The domain-separation prefix of every signed text: a signature made for
/// another purpose with the same key can never pass as one of these.
const SIGNING_CONTEXT: &[u8] = b"hooktrail-signed-v1";

/// The version of the message format.
pub const MESSAGE_VERSION: u32 = 1;

/// The longest signed line read back (the reason is bounded by the
/// collector; this bounds what a hostile writer can make the hook parse).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The 32 secret bytes.
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Key(..)")
    }
}

/// Why a key file could not be used. The message names the file, never the key.
#[derive(Debug)]
pub struct KeyError {
    /// What a person reads.
    pub message: String,
    /// Whether the file simply does not exist (the usual "approvals are not
    /// set up here"), as opposed to a file that exists but is refused.
    pub missing: bool,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl Key {
    /// A fresh key from the kernel's random pool.
    pub fn generate() -> Key {
        let mut bytes = [0u8; 32];
        crate::event_id::fill_random(&mut bytes);
        Key { bytes }
    }

    /// A key from its 64 hex characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<Key> {
        let bytes: [u8; 32] = decode_hex(text.trim())?.try_into().ok()?;
        Some(Key { bytes })
    }

    /// The key as 64 hex characters, to write to its file.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.bytes)
    }

    /// Reads the key file. Refused unless it is a regular file (a symlink is
    /// not followed; a FIFO does not block the reader: `O_NONBLOCK`) owned
    /// by us, readable by nobody else, in a directory nobody else can write
    /// in, of at most [`KEY_FILE_MAX_BYTES`], holding 64 hex characters.
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let refuse = |why: String| KeyError {
            message: format!("approvals key file {}: {why}", path.display()),
            missing: false,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| KeyError {
                missing: error.kind() == io::ErrorKind::NotFound,
                ..refuse(error.to_string())
            })?;
        let metadata = file.metadata().map_err(|error| refuse(error.to_string()))?;
        let own = paths::euid();
        if !metadata.file_type().is_file() {
            return Err(refuse("not a regular file".to_owned()));
        }
        if metadata.uid() != own {
            return Err(refuse(format!(
                "belongs to uid {}, not to us (uid {own})",
                metadata.uid()
            )));
        }
        if metadata.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "other users can read it (mode {:04o}); run: chmod 600 {}",
                metadata.mode() & 0o7777,
                path.display()
            )));
        }
        if metadata.len() > KEY_FILE_MAX_BYTES {
            return Err(refuse(format!("larger than {KEY_FILE_MAX_BYTES} bytes")));
        }
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            let directory = fs::metadata(parent).map_err(|error| refuse(error.to_string()))?;
            if (directory.uid() != own && directory.uid() != 0) || directory.mode() & 0o022 != 0 {
                return Err(refuse(format!(
                    "its directory {} is not ours alone to write in",
                    parent.display()
                )));
            }
        }
        let mut text = String::new();
        file.take(KEY_FILE_MAX_BYTES)
            .read_to_string(&mut text)
            .map_err(|error| refuse(error.to_string()))?;
        Key::from_hex(&text).ok_or_else(|| refuse("does not hold 64 hex characters".to_owned()))
    }

    /// Reads the key file, or creates it (0600, in a 0700 directory) with a
    /// fresh key when it does not exist. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Key, bool), KeyError> {
        match Key::load(path) {
            Ok(key) => return Ok((key, false)),
            Err(error) if !error.missing => return Err(error),
            Err(_) => {}
        }
        let refuse = |error: io::Error| KeyError {
            message: format!("approvals key file {}: {error}", path.display()),
            missing: false,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            paths::ensure_private_dir(parent).map_err(refuse)?;
        }
        let key = Key::generate();
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(format!("{}\n", key.to_hex()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(refuse)?;
                Ok((key, true))
            }
            // Another process created it between the two steps: use theirs.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                Key::load(path).map(|key| (key, false))
            }
            Err(error) => Err(refuse(error)),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; 32 bytes cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes).expect("HMAC accepts any key length")
    }
}

/// What a signed message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A decision on a `PermissionRequest`.
    Permission,
    /// A budget's verdict (phase 2 of the shared design).
    Budget,
    /// A kind this version does not know: never acted on.
    #[serde(other)]
    Other,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Permission => "permission",
            Kind::Budget => "budget",
            Kind::Other => "other",
        }
    }
}

/// The answer a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the call run.
    Allow,
    /// Refuse it (with the message's reason).
    Deny,
    /// Leave it to the terminal (budgets).
    Ask,
    /// A verdict this version does not know: never acted on.
    #[serde(other)]
    Other,
}

impl Verdict {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Ask => "ask",
            Verdict::Other => "other",
        }
    }
}

/// One signed message, one JSON line (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The format version: only [`MESSAGE_VERSION`] is acted on.
    pub v: u32,
    /// What it is about, so a budget verdict never passes as an approval.
    pub kind: Kind,
    /// The event it answers: binds the decision to one request.
    pub event_id: String,
    /// The session of that event: a second, independent binding.
    pub session_id: String,
    /// [`input_hash`] of the call it answers: what was approved is what runs.
    pub input_hash: String,
    /// The answer.
    pub verdict: Verdict,
    /// Why, as the person typed it; shown to the model on a deny.
    pub reason: String,
    /// Who decided (a token's name): named in the deny message and the audit.
    pub by: String,
    /// Unix milliseconds after which the message is worthless.
    pub exp: u64,
    /// HMAC-SHA256 over all of the above, hex.
    pub sig: String,
}

/// What the receiver expects a message to be about.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The kind it waits for.
    pub kind: Kind,
    /// The event it waits on.
    pub event_id: &'a str,
    /// That event's session.
    pub session_id: &'a str,
    /// [`input_hash`] of the call it sent.
    pub input_hash: &'a str,
}

/// Why a message was not acted on (for the diagnostics; never its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not one JSON object of the expected shape, or too long.
    Malformed,
    /// Another format version.
    Version,
    /// The signature does not verify with our key (forged, or another key).
    Signature,
    /// Another kind of message.
    Kind,
    /// It answers another event (a replay).
    EventId,
    /// It names another session.
    Session,
    /// It answers another tool call.
    Input,
    /// Its expiry has passed.
    Expired,
}

impl SignedMessage {
    /// Builds and signs a message; `sig` is computed here.
    pub fn sign(key: &Key, unsigned: Unsigned) -> SignedMessage {
        let mut message = SignedMessage {
            v: MESSAGE_VERSION,
            kind: unsigned.kind,
            event_id: unsigned.event_id,
            session_id: unsigned.session_id,
            input_hash: unsigned.input_hash,
            verdict: unsigned.verdict,
            reason: unsigned.reason,
            by: unsigned.by,
            exp: unsigned.exp,
            sig: String::new(),
        };
        let mut mac = key.mac();
        message.feed(&mut mac);
        message.sig = encode_hex(&mac.finalize().into_bytes());
        message
    }

    /// The message as one JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a signed message always serializes")
    }

    /// Parses one line; `None` for anything that is not a message.
    pub fn parse(line: &[u8]) -> Option<SignedMessage> {
        if line.len() > MAX_MESSAGE_BYTES {
            return None;
        }
        serde_json::from_slice(line).ok()
    }

    /// Checks everything the receiver must check before acting, the
    /// signature first (so nothing of an unsigned message is compared).
    pub fn verify(&self, key: &Key, expected: &Expected, now_millis: u64) -> Result<(), Rejection> {
        if self.v != MESSAGE_VERSION {
            return Err(Rejection::Version);
        }
        let signature = decode_hex(&self.sig).ok_or(Rejection::Signature)?;
        let mut mac = key.mac();
        self.feed(&mut mac);
        mac.verify_slice(&signature)
            .map_err(|_| Rejection::Signature)?;
        if self.kind != expected.kind || self.kind == Kind::Other {
            return Err(Rejection::Kind);
        }
        if self.event_id != expected.event_id {
            return Err(Rejection::EventId);
        }
        if self.session_id != expected.session_id {
            return Err(Rejection::Session);
        }
        if self.input_hash != expected.input_hash {
            return Err(Rejection::Input);
        }
        if self.exp <= now_millis {
            return Err(Rejection::Expired);
        }
        Ok(())
    }

    /// Feeds the signed text: the context, then each field as
    /// `<byte length>:<bytes>\n`, so no reason can shift a field boundary.
    fn feed(&self, mac: &mut Hmac<Sha256>) {
        mac.update(SIGNING_CONTEXT);
        let exp = self.exp.to_string();
        for field in [
            self.kind.as_str(),
            &self.event_id,
            &self.session_id,
            &self.input_hash,
            self.verdict.as_str(),
            &self.reason,
            &self.by,
            &exp,
        ] {
            mac.update(format!("{}:", field.len()).as_bytes());
            mac.update(field.as_bytes());
            mac.update(b"\n");
        }
    }
}

/// The fields of a message before it is signed.
#[derive(Debug, Clone)]
pub struct Unsigned {
    /// See [`SignedMessage::kind`].
    pub kind: Kind,
    /// See [`SignedMessage::event_id`].
    pub event_id: String,
    /// See [`SignedMessage::session_id`].
    pub session_id: String,
    /// See [`SignedMessage::input_hash`].
    pub input_hash: String,
    /// See [`SignedMessage::verdict`].
    pub verdict: Verdict,
    /// See [`SignedMessage::reason`].
    pub reason: String,
    /// See [`SignedMessage::by`].
    pub by: String,
    /// See [`SignedMessage::exp`].
    pub exp: u64,
}

/// Whether two secrets (tokens) are equal, in time that depends on their
/// length only, not on where they first differ. For the collector's bearer
/// checks (the API, remote approval's named tokens, the OTLP receiver).
pub fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// SHA-256 (hex) of `tool_name`, a NUL byte, and `tool_input` as canonical
/// JSON (object keys sorted at every level, no white space). Both sides
/// hash the redacted payload: the emitter the one it sent, the collector the
/// one it stored. Keys are sorted here rather than by relying on
/// `serde_json`'s map order, because the emitter builds `serde_json` with
/// `preserve_order` and feature unification can give the collector either.
pub fn input_hash(tool_name: &str, tool_input: Option<&serde_json::Value>) -> String {
    let mut text = String::with_capacity(256);
    text.push_str(tool_name);
    text.push('\0');
    match tool_input {
        Some(value) => write_canonical(value, &mut text),
        None => text.push_str("null"),
    }
    encode_hex(&Sha256::digest(text.as_bytes()))
}

/// [`input_hash`] of a hook payload's `tool_name` and `tool_input`, from its
/// JSON text; `None` when the text is not a JSON object.
pub fn payload_input_hash(payload: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ToolCall {
        #[serde(default)]
        tool_name: Option<String>,
        #[serde(default)]
        tool_input: Option<serde_json::Value>,
    }
    let call: ToolCall = serde_json::from_str(payload).ok()?;
    Some(input_hash(
        call.tool_name.as_deref().unwrap_or(""),
        call.tool_input.as_ref(),
    ))
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("a string serializes"));
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).expect("a scalar serializes")),
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const NOW: u64 = 1_800_000_000_000;

    fn decision(key: &Key) -> SignedMessage {
        SignedMessage::sign(
            key,
            Unsigned {
                kind: Kind::Permission,
                event_id: "ev-1".to_owned(),
                session_id: "s-1".to_owned(),
                input_hash: input_hash("Bash", Some(&json!({"command": "ls"}))),
                verdict: Verdict::Allow,
                reason: "fine".to_owned(),
                by: "owner".to_owned(),
                exp: NOW + 60_000,
            },
        )
    }

    fn expected(hash: &str) -> Expected<'_> {
        Expected {
            kind: Kind::Permission,
            event_id: "ev-1",
            session_id: "s-1",
            input_hash: hash,
        }
    }

    #[test]
    fn a_signed_decision_verifies_after_a_round_trip() {
        let key = Key::generate();
        let message = decision(&key);
        let parsed = SignedMessage::parse(message.to_line().as_bytes()).unwrap();
        let hash = input_hash("Bash", Some(&json!({"command": "ls"})));
        assert_eq!(parsed.verify(&key, &expected(&hash), NOW), Ok(()));
    }

    #[test]
    fn a_forged_decision_is_rejected() {
        let key = Key::generate();
        let hash = input_hash("Bash", Some(&json!({"command": "ls"})));
        // Signed with another key.
        let forged = decision(&Key::generate());
        assert_eq!(
            forged.verify(&key, &expected(&hash), NOW),
            Err(Rejection::Signature)
        );
        // Signed with ours, then changed: a deny turned into an allow, a
        // reason moved into `by`.
        let mut changed = decision(&key);
        changed.verdict = Verdict::Deny;
        assert_eq!(
            changed.verify(&key, &expected(&hash), NOW),
            Err(Rejection::Signature)
        );
        let mut shifted = decision(&key);
        shifted.by = format!("{}\n{}", shifted.reason, shifted.by);
        shifted.reason = String::new();
        assert_eq!(
            shifted.verify(&key, &expected(&hash), NOW),
            Err(Rejection::Signature)
        );
        let mut no_signature = decision(&key);
        no_signature.sig = "zz".to_owned();
        assert_eq!(
            no_signature.verify(&key, &expected(&hash), NOW),
            Err(Rejection::Signature)
        );
    }

    #[test]
    fn a_decision_replayed_onto_another_event_is_rejected() {
        let key = Key::generate();
        let hash = input_hash("Bash", Some(&json!({"command": "ls"})));
        let message = decision(&key);
        let other_event = Expected {
            event_id: "ev-2",
            ..expected(&hash)
        };
        assert_eq!(
            message.verify(&key, &other_event, NOW),
            Err(Rejection::EventId)
        );
        let other_session = Expected {
            session_id: "s-2",
            ..expected(&hash)
        };
        assert_eq!(
            message.verify(&key, &other_session, NOW),
            Err(Rejection::Session)
        );
        let budget = Expected {
            kind: Kind::Budget,
            ..expected(&hash)
        };
        assert_eq!(message.verify(&key, &budget, NOW), Err(Rejection::Kind));
    }

    #[test]
    fn a_decision_for_another_input_is_rejected() {
        let key = Key::generate();
        let other = input_hash("Bash", Some(&json!({"command": "rm -rf /"})));
        assert_eq!(
            decision(&key).verify(&key, &expected(&other), NOW),
            Err(Rejection::Input)
        );
    }

    #[test]
    fn an_expired_decision_is_rejected() {
        let key = Key::generate();
        let hash = input_hash("Bash", Some(&json!({"command": "ls"})));
        let message = decision(&key);
        assert_eq!(
            message.verify(&key, &expected(&hash), message.exp),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn unknown_kinds_and_verdicts_parse_but_never_verify() {
        let key = Key::generate();
        let mut line: serde_json::Value = serde_json::from_str(&decision(&key).to_line()).unwrap();
        line["kind"] = json!("launch");
        let parsed = SignedMessage::parse(line.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.kind, Kind::Other);
        let hash = input_hash("Bash", Some(&json!({"command": "ls"})));
        assert!(parsed.verify(&key, &expected(&hash), NOW).is_err());
        assert!(SignedMessage::parse(b"not json").is_none());
        assert!(SignedMessage::parse(&vec![b' '; MAX_MESSAGE_BYTES + 1]).is_none());
    }

    #[test]
    fn the_input_hash_ignores_key_order_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"t"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"t","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(input_hash("Edit", Some(&a)), input_hash("Edit", Some(&b)));
        assert_ne!(input_hash("Edit", Some(&a)), input_hash("Write", Some(&a)));
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"t","y":[2,1]},"b":1}"#).unwrap();
        assert_ne!(input_hash("Edit", Some(&a)), input_hash("Edit", Some(&c)));
        assert_eq!(
            payload_input_hash(
                r#"{"tool_name":"Edit","tool_input":{"b":1,"a":{"y":[1,2],"x":"t"}},"cwd":"/"}"#
            ),
            Some(input_hash("Edit", Some(&a)))
        );
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/hooktrail/approvals.key");
        let (key, created) = Key::load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let (again, created_again) = Key::load_or_create(&path).unwrap();
        assert!(!created_again);
        assert_eq!(key, again);
        assert_eq!(format!("{key:?}"), "Key(..)");
    }

    #[test]
    fn unsafe_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.path().join("approvals.key");
        assert!(Key::load(&path).unwrap_err().missing);
        fs::write(&path, format!("{}\n", Key::generate().to_hex())).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Key::load(&path).unwrap_err().message.contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Key::load(&path).is_ok());
        // Too large, not hex, a symlink, a FIFO: all refused, none blocks.
        fs::write(&path, "a".repeat(KEY_FILE_MAX_BYTES as usize + 1)).unwrap();
        assert!(Key::load(&path).is_err());
        fs::write(&path, "not a key").unwrap();
        assert!(Key::load(&path).is_err());
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(!Key::load(&link).unwrap_err().missing);
        let fifo = dir.path().join("fifo.key");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a plain mkfifo of a path we own.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(Key::load(&fifo).unwrap_err().message.contains("regular"));
    }
}
