//! The environment as hook mode reads it (issue 21).
//!
//! Loading the config looks up some twenty variables, and each
//! `std::env::var` takes the environment lock, copies the name into a C
//! string and has `getenv` compare it with every variable of the process,
//! which under Claude Code is the person's whole environment. [`HookEnv`]
//! walks the environment once and keeps the entries a hook reads by name
//! (`HOOKTRAIL_*`, `XDG_*`, `HOME`), borrowed, not copied; a lookup then
//! searches those few. Any other name (a `$NAME` in a configured path) is
//! looked up the ordinary way, so every answer is
//! [`paths::process_env`]'s.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use hooktrail_shared::paths;

/// The entries of the environment whose names [`HookEnv`] keeps.
fn kept(name: &[u8]) -> bool {
    name.starts_with(b"HOOKTRAIL_") || name.starts_with(b"XDG_") || name == b"HOME"
}

/// Whether the NUL-terminated string at `text` starts with `prefix` (which
/// holds no NUL): a mismatch, the terminator included, stops the reading.
///
/// # Safety
/// `text` points to a NUL-terminated string.
unsafe fn starts_with(text: *const libc::c_char, prefix: &[u8]) -> bool {
    for (index, &byte) in prefix.iter().enumerate() {
        // SAFETY: every byte before `index` matched a non-NUL prefix byte,
        // so the terminator is not before `index`.
        if unsafe { *text.add(index) } as u8 != byte {
            return false;
        }
    }
    true
}

/// The kept variables, in the environment's order, as `(name, value)`.
pub struct HookEnv {
    vars: Vec<(&'static [u8], &'static [u8])>,
}

static CAPTURED: OnceLock<HookEnv> = OnceLock::new();

impl HookEnv {
    /// The environment of this process, read once. Hook mode never sets a
    /// variable, so the strings stay valid and unchanged until it exits.
    pub fn get() -> &'static HookEnv {
        CAPTURED.get_or_init(HookEnv::capture)
    }

    fn capture() -> HookEnv {
        let mut vars = Vec::new();
        // SAFETY: `environ` is a NULL-terminated array of NUL-terminated
        // strings that libc set up before `main`. Nothing in this process
        // sets, unsets or puts variables (std's `set_var` is never called),
        // so the array and its strings live, unchanged, until exit; the
        // `'static` borrows below rely on that.
        unsafe {
            let mut entry = libc::environ;
            while !entry.is_null() && !(*entry).is_null() {
                // Only the entries that may be kept are measured: PATH and
                // the like are passed by after a byte or two.
                if [&b"HOOKTRAIL_"[..], b"XDG_", b"HOME="]
                    .iter()
                    .any(|prefix| starts_with(*entry, prefix))
                {
                    let bytes = CStr::from_ptr(*entry).to_bytes();
                    if let Some(equals) = bytes.iter().position(|&byte| byte == b'=') {
                        let (name, value) = (&bytes[..equals], &bytes[equals + 1..]);
                        if kept(name) {
                            vars.push((name, value));
                        }
                    }
                }
                entry = entry.add(1);
            }
        }
        HookEnv { vars }
    }

    /// What [`paths::process_env`] answers for `name`: the value when set,
    /// non-empty and UTF-8. The first entry of a name counts, as for
    /// `getenv`.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if !kept(name.as_bytes()) {
            return paths::process_env(name);
        }
        let (_, value) = self
            .vars
            .iter()
            .find(|(kept_name, _)| *kept_name == name.as_bytes())?;
        std::str::from_utf8(value)
            .ok()
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    }

    /// Whether `name` is set at all (any value, as `var_os(name).is_some()`).
    pub fn is_set(&self, name: &str) -> bool {
        self.value_os(name).is_some()
    }

    /// What `std::env::var_os(name)` answers, without copying a kept
    /// variable's value.
    pub fn value_os(&self, name: &str) -> Option<std::borrow::Cow<'static, OsStr>> {
        if !kept(name.as_bytes()) {
            return std::env::var_os(name).map(std::borrow::Cow::Owned);
        }
        self.vars
            .iter()
            .find(|(kept_name, _)| *kept_name == name.as_bytes())
            .map(|(_, value)| std::borrow::Cow::Borrowed(OsStr::from_bytes(value)))
    }
}

/// [`HookEnv::lookup`] on the process's captured environment, as an
/// [`paths::EnvLookup`].
pub fn lookup(name: &str) -> Option<String> {
    HookEnv::get().lookup(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_the_process_environment_does() {
        let env = HookEnv::get();
        let mut names: Vec<String> = std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        names.extend(
            [
                "HOME",
                "XDG_CONFIG_HOME",
                "XDG_STATE_HOME",
                "XDG_RUNTIME_DIR",
                "HOOKTRAIL_CONFIG",
                "HOOKTRAIL_REDIS_URL",
                "HOOKTRAIL_NOT_SET_ANYWHERE",
                "PATH",
                "NOT_SET_ANYWHERE",
            ]
            .map(str::to_owned),
        );
        for name in &names {
            assert_eq!(env.lookup(name), paths::process_env(name), "{name}");
            assert_eq!(
                env.value_os(name).map(|value| value.into_owned()),
                std::env::var_os(name),
                "{name}"
            );
        }
    }
}
