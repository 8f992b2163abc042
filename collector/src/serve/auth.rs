//! The page's credentials (DESIGN §7): the long-lived token never goes into
//! a URL, so browser history, address-bar suggestions and synced history
//! never hold one that works.
//!
//! - **One-time codes.** `hooktrail-collector url` writes a random code as
//!   an empty file into `page-codes/` beside the token file (0600 in a 0700
//!   directory, the collector's own) and prints `http://HOST:PORT/#code=CODE`.
//!   The page sends the code once (`POST /api/page-token`, Origin-checked);
//!   the collector deletes the file as it accepts it, so a code works once,
//!   even across a restart, and not at all after [`CODE_LIFETIME`].
//! - **Page tokens.** The exchange answers with a page token: an expiry and
//!   a nonce, signed with HMAC-SHA-256 keyed by the long-lived token. The
//!   page keeps it in `sessionStorage` (which Chromium writes to the
//!   profile, in its "Session Storage" database) and renews it well before
//!   it expires; all of them stop when the token is rotated, since the key
//!   changes.
//! - **Binders.** A page token works only together with its binder: a
//!   random value, signed like a page token, that the exchange sets as a
//!   session cookie (no `Max-Age` or `Expires`, `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`), and that the page token's signature
//!   covers. Browsers keep session cookies in memory only (Chromium writes
//!   them to its `Cookies` database only when it restores sessions), so a
//!   page token left in a closed browser's profile opens nothing, at once,
//!   not after its lifetime. A reload, or another tab of the same browser,
//!   still sends the cookie. The cookie's name holds the port
//!   (`hooktrail_binder_7717`): cookies are not kept apart by port, so two
//!   collectors on one host do not overwrite each other's. The
//!   long-lived token (`Authorization: Bearer`, for scripts) needs no
//!   binder.
//! - **WebSocket tickets.** A browser cannot put a header on a WebSocket, so
//!   `/ws` takes `?ticket=`: a random value from `POST /api/ws-ticket`,
//!   valid once for [`TICKET_LIFETIME`]. A failed socket's URL, which
//!   Chromium prints in the console, holds nothing that still works.
//! - **Rotation.** `hooktrail-collector token rotate` replaces the token
//!   file; [`TokenSource`] sees the new file within a second.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ring::hmac;

/// How long a one-time code printed by `hooktrail-collector url` can be
/// exchanged: long enough to paste it, short enough that an old link in a
/// history is dead.
pub const CODE_LIFETIME: Duration = Duration::from_secs(300);

/// How long a WebSocket ticket is valid: the page opens its socket at once.
pub(crate) const TICKET_LIFETIME: Duration = Duration::from_secs(30);

/// The default lifetime of a page token (`--page-token-lifetime`); the page
/// renews it at a third of that.
pub const DEFAULT_PAGE_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The most tickets outstanding at once: tickets are issued only to holders
/// of a token, but memory stays bounded whatever a client does.
const MAX_TICKETS: usize = 4096;

/// How often the token file is looked at for a rotation.
const TOKEN_FILE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The prefix of a page token, so the format can change later (`p1`
/// tokens, not bound to a binder, are no longer accepted).
const PAGE_TOKEN_VERSION: &str = "p2";

/// The prefix of a binder (see the module doc).
const BINDER_VERSION: &str = "b1";

/// The directory one-time codes are kept in: beside the token file, so the
/// collector and `hooktrail-collector url` find the same one.
pub fn codes_dir(token_file: &Path) -> PathBuf {
    token_file.with_file_name("page-codes")
}

/// `n` random bytes as lowercase hex, from the kernel.
pub(crate) fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled != n as isize {
        return Err("cannot read random bytes".to_owned());
    }
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `path` is a directory of ours that nobody else can enter: only
/// then can a file in it be trusted to come from this user.
fn private_dir_of_ours(path: &Path) -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    let own = unsafe { libc::getuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.is_dir() && meta.uid() == own && meta.mode() & 0o077 == 0)
}

/// Whether `code` has the shape `create_code` gives (32 hex digits), so it
/// can be used as a file name and never names anything else.
fn code_shaped(code: &str) -> bool {
    code.len() == 32
        && code
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Deletes the codes in `dir` older than [`CODE_LIFETIME`].
fn sweep_codes(dir: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|made| now.duration_since(made).unwrap_or_default() > CODE_LIFETIME);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a new one-time code into `dir` (created 0700 if missing) and
/// returns it (`hooktrail-collector url`).
pub fn create_code(dir: &Path) -> Result<String, String> {
    let describe = |error: std::io::Error| format!("one-time codes {}: {error}", dir.display());
    hooktrail_shared::paths::ensure_private_dir(dir).map_err(describe)?;
    if !private_dir_of_ours(dir) {
        return Err(format!(
            "one-time codes {}: not a private (0700) directory of ours",
            dir.display()
        ));
    }
    sweep_codes(dir, SystemTime::now());
    let code = random_hex(16)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(&code))
        .map_err(describe)?;
    Ok(code)
}

/// Deletes every outstanding code in `dir` (`token rotate`).
pub fn clear_codes(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Why a code was refused; the answer says which, none says more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    /// Not a code this collector issued, or one already used.
    UnknownOrUsed,
    /// Issued more than [`CODE_LIFETIME`] ago.
    Expired,
}

/// Accepts `code` once: its file in `dir` is deleted as it is accepted, so
/// two pages racing with one code get one acceptance between them.
pub(crate) fn redeem_code(dir: &Path, code: &str, now: SystemTime) -> Result<(), CodeRefusal> {
    if !code_shaped(code) || !private_dir_of_ours(dir) {
        return Err(CodeRefusal::UnknownOrUsed);
    }
    let path = dir.join(code);
    let made = std::fs::symlink_metadata(&path)
        .ok()
        .filter(|meta| meta.is_file())
        .and_then(|meta| meta.modified().ok())
        .ok_or(CodeRefusal::UnknownOrUsed)?;
    std::fs::remove_file(&path).map_err(|_| CodeRefusal::UnknownOrUsed)?;
    sweep_codes(dir, now);
    if now.duration_since(made).unwrap_or_default() > CODE_LIFETIME {
        return Err(CodeRefusal::Expired);
    }
    Ok(())
}

fn page_token_key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The HMAC tag of `message` under `secret`, as hex. Page tokens and
/// binders sign messages with different prefixes (`page:`, `binder:`), so
/// one can never pass for the other.
fn tag_hex(secret: &str, message: &str) -> String {
    hex(hmac::sign(&page_token_key(secret), message.as_bytes()).as_ref())
}

/// Whether `tag` (hex) is the HMAC of `message` under `secret`, compared in
/// constant time by `ring`.
fn tag_matches(secret: &str, message: &str, tag: &str) -> bool {
    unhex(tag)
        .is_some_and(|tag| hmac::verify(&page_token_key(secret), message.as_bytes(), &tag).is_ok())
}

/// A new binder (`b1.NONCE.MAC`), signed with `secret`.
pub(crate) fn issue_binder(secret: &str) -> Result<String, String> {
    let signed = format!("{BINDER_VERSION}.{}", random_hex(16)?);
    let tag = tag_hex(secret, &format!("binder:{signed}"));
    Ok(format!("{signed}.{tag}"))
}

/// Whether `binder` is one this collector issued with `secret`: only such
/// a binder is reused by a new sign-in, so nobody can fix a browser's
/// binder to a value of their choosing.
pub(crate) fn binder_valid(secret: &str, binder: &str) -> bool {
    let Some((signed, tag)) = binder.rsplit_once('.') else {
        return false;
    };
    let mut parts = signed.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(BINDER_VERSION), Some(nonce), None) if nonce.len() == 32
    ) && tag_matches(secret, &format!("binder:{signed}"), tag)
}

/// A page token valid until `now_ms + lifetime` with `binder`, signed with
/// `secret`.
pub(crate) fn issue_page_token(
    secret: &str,
    binder: &str,
    now_ms: i64,
    lifetime: Duration,
) -> Result<String, String> {
    let expiry = now_ms + lifetime.as_millis() as i64;
    let signed = format!("{PAGE_TOKEN_VERSION}.{expiry}.{}", random_hex(16)?);
    let tag = tag_hex(secret, &format!("page:{signed}|{binder}"));
    Ok(format!("{signed}.{tag}"))
}

/// What a page token is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageTokenCheck<'a> {
    /// The long-lived token: the key.
    pub(crate) secret: &'a str,
    /// The binder cookie the request carries, if any.
    pub(crate) binder: Option<&'a str>,
    /// Now (unix ms).
    pub(crate) now_ms: i64,
    /// The longest life a page token may claim.
    pub(crate) lifetime: Duration,
}

/// Whether `token` is a page token signed with the check's secret for the
/// binder the request carries, that has not expired (and does not claim a
/// lifetime over the check's). Without a binder, no page token works.
pub(crate) fn page_token_valid(token: &str, check: PageTokenCheck<'_>) -> bool {
    let Some(binder) = check.binder else {
        return false;
    };
    let Some((signed, tag)) = token.rsplit_once('.') else {
        return false;
    };
    let mut parts = signed.split('.');
    let (Some(PAGE_TOKEN_VERSION), Some(expiry), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expiry) = expiry.parse::<i64>() else {
        return false;
    };
    if expiry <= check.now_ms || expiry > check.now_ms + check.lifetime.as_millis() as i64 {
        return false;
    }
    tag_matches(check.secret, &format!("page:{signed}|{binder}"), tag)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The WebSocket tickets outstanding: each valid once, briefly.
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    /// Ticket → when it was issued.
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tickets {
    /// A new ticket, or `None` when too many are outstanding.
    pub(crate) fn issue(&self) -> Option<String> {
        let ticket = random_hex(16).ok()?;
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.retain(|_, at| at.elapsed() <= TICKET_LIFETIME);
        if issued.len() >= MAX_TICKETS {
            return None;
        }
        issued.insert(ticket.clone(), Instant::now());
        Some(ticket)
    }

    /// Whether `ticket` was issued less than [`TICKET_LIFETIME`] ago and not
    /// used yet; it is used up either way.
    pub(crate) fn redeem(&self, ticket: &str) -> bool {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued
            .remove(ticket)
            .is_some_and(|at| at.elapsed() <= TICKET_LIFETIME)
    }
}

/// The long-lived token, re-read from its file when the file changes
/// (`hooktrail-collector token rotate`).
#[derive(Debug)]
pub(crate) struct TokenSource {
    /// The file the token came from; `None` for `--token` or
    /// `$HOOKTRAIL_TOKEN`, which only a restart changes.
    file: Option<PathBuf>,
    /// The token in use, and what the file looked like when it was read.
    current: RwLock<CurrentToken>,
}

/// The token [`TokenSource`] holds now.
#[derive(Debug)]
struct CurrentToken {
    /// The token; `None` serves without one (`--no-token`).
    token: Option<String>,
    /// The file's inode and modification time when read, to notice a new
    /// file (rotation renames one into place).
    seen: Option<(u64, i64, i64)>,
    /// When the file was last looked at.
    checked: Instant,
}

fn file_identity(path: &Path) -> Option<(u64, i64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec()))
}

impl TokenSource {
    pub(crate) fn new(token: Option<String>, file: Option<PathBuf>) -> TokenSource {
        let seen = file.as_deref().and_then(file_identity);
        TokenSource {
            file,
            current: RwLock::new(CurrentToken {
                token,
                seen,
                checked: Instant::now(),
            }),
        }
    }

    /// The token in use now.
    pub(crate) fn token(&self) -> Option<String> {
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if self.file.is_none() || current.checked.elapsed() < TOKEN_FILE_CHECK_EVERY {
                return current.token.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.checked = Instant::now();
        let Some(path) = self.file.as_deref() else {
            return current.token.clone();
        };
        let seen = file_identity(path);
        if seen.is_some() && seen != current.seen {
            if let Some(token) = std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|token| token.len() >= 32)
            {
                crate::log::info("the HTTP token file changed: the new token is in use; older page links and page tokens no longer work");
                current.token = Some(token);
                current.seen = seen;
            }
        }
        current.token.clone()
    }
}

/// Writes a new token into `token_file` (0600, renamed into place so the
/// collector never reads half of it) and deletes outstanding codes.
pub fn rotate_token(token_file: &Path) -> Result<(), String> {
    use std::io::Write;
    let describe = |error: std::io::Error| format!("token file {}: {error}", token_file.display());
    let dir = token_file
        .parent()
        .ok_or_else(|| format!("token file {}: no directory", token_file.display()))?;
    hooktrail_shared::paths::ensure_private_dir(dir).map_err(describe)?;
    let token = random_hex(32)?;
    let temporary = token_file.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(describe)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(describe)?;
    std::fs::rename(&temporary, token_file).map_err(describe)?;
    clear_codes(&codes_dir(token_file));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<'a>(secret: &'a str, binder: Option<&'a str>, now_ms: i64) -> PageTokenCheck<'a> {
        PageTokenCheck {
            secret,
            binder,
            now_ms,
            lifetime: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_page_token_works_until_it_expires_and_only_with_its_key_and_binder() {
        let lifetime = Duration::from_secs(60);
        let binder = issue_binder("secret-a").unwrap();
        let token = issue_page_token("secret-a", &binder, 1_000, lifetime).unwrap();
        let with = |secret, binder, now| page_token_valid(&token, check(secret, binder, now));
        assert!(with("secret-a", Some(&binder), 1_000));
        assert!(with("secret-a", Some(&binder), 60_999));
        assert!(!with("secret-a", Some(&binder), 61_000));
        assert!(!with("secret-b", Some(&binder), 1_000));
        // Without its binder cookie, or with another one, it opens nothing.
        assert!(!with("secret-a", None, 1_000));
        let other = issue_binder("secret-a").unwrap();
        assert!(!with("secret-a", Some(&other), 1_000));
        // A token claiming a longer life than the collector gives is forged.
        let short = PageTokenCheck {
            lifetime: Duration::from_secs(1),
            ..check("secret-a", Some(&binder), 1_000)
        };
        assert!(!page_token_valid(&token, short));
        let forged = token.replacen("61000", "99999", 1);
        assert!(!page_token_valid(
            &forged,
            check("secret-a", Some(&binder), 1_000)
        ));
        for junk in ["", "p2", "p2.x.y.z", "p2.61000.ab.zz", "secret-a", &binder] {
            assert!(
                !page_token_valid(junk, check("secret-a", Some(&binder), 1_000)),
                "{junk}"
            );
        }
    }

    #[test]
    fn only_a_binder_this_collector_signed_is_valid() {
        let binder = issue_binder("secret-a").unwrap();
        assert!(binder_valid("secret-a", &binder));
        assert!(!binder_valid("secret-b", &binder));
        let lifetime = Duration::from_secs(60);
        // A page token's signature is not a binder's.
        let token = issue_page_token("secret-a", &binder, 1_000, lifetime).unwrap();
        assert!(!binder_valid("secret-a", &token));
        for junk in [
            "",
            "b1",
            "b1.00.00",
            "b1.0123456789abcdef0123456789abcdef.zz",
        ] {
            assert!(!binder_valid("secret-a", junk), "{junk}");
        }
    }

    #[test]
    fn a_code_works_once_and_not_after_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let codes = dir.path().join("page-codes");
        let code = create_code(&codes).unwrap();
        assert_eq!(redeem_code(&codes, &code, SystemTime::now()), Ok(()));
        assert_eq!(
            redeem_code(&codes, &code, SystemTime::now()),
            Err(CodeRefusal::UnknownOrUsed)
        );
        let old = create_code(&codes).unwrap();
        let later = SystemTime::now() + CODE_LIFETIME + Duration::from_secs(1);
        assert_eq!(redeem_code(&codes, &old, later), Err(CodeRefusal::Expired));
        for junk in ["../http-token", "", "ABCDEF0123456789ABCDEF0123456789"] {
            assert_eq!(
                redeem_code(&codes, junk, SystemTime::now()),
                Err(CodeRefusal::UnknownOrUsed)
            );
        }
    }

    #[test]
    fn a_ticket_works_once() {
        let tickets = Tickets::default();
        let ticket = tickets.issue().unwrap();
        assert!(tickets.redeem(&ticket));
        assert!(!tickets.redeem(&ticket));
        assert!(!tickets.redeem("never-issued"));
    }
}
