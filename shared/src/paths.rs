//! XDG locations and private directories.
//!
//! Every default path of DESIGN §4 and §5 is computed here, from an
//! environment lookup function so that tests can supply their own.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Reads one environment variable; empty values count as unset, as XDG says.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`EnvLookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The home directory; without `HOME`, the user's [`private_base_dir`]
/// rather than a path every user shares (`/tmp` was: whoever created
/// `/tmp/.local/state/hooktrail/spool` first received everyone's events).
fn home(env: EnvLookup) -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| private_base_dir(env))
}

/// The user's own directory for runtime files: `$XDG_RUNTIME_DIR/hooktrail`,
/// or, where there is no runtime directory (no systemd login session),
/// `/tmp/hooktrail-$UID`. It holds the socket; it stands in for the home
/// directory when `HOME` is unset, and it holds the spool of last resort.
/// [`ensure_private_dir`] makes it 0700 and refuses it if another user made
/// it first.
pub fn private_base_dir(env: EnvLookup) -> PathBuf {
    match env("XDG_RUNTIME_DIR") {
        Some(runtime) => PathBuf::from(runtime).join("hooktrail"),
        None => {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            PathBuf::from(format!("/tmp/hooktrail-{uid}"))
        }
    }
}

/// The spool of last resort, in [`private_base_dir`]: used when the
/// configured spool directory cannot be used (someone else's, or not
/// writable), so the event is kept, privately, for a person to find
/// (`hooktrail-emit check` shows it).
pub fn fallback_spool_dir(env: EnvLookup) -> PathBuf {
    private_base_dir(env).join("spool")
}

fn xdg(env: EnvLookup, variable: &str, fallback_under_home: &str) -> PathBuf {
    env(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| home(env).join(fallback_under_home))
}

/// `$XDG_CONFIG_HOME/hooktrail/config.json`.
pub fn default_config_file(env: EnvLookup) -> PathBuf {
    xdg(env, "XDG_CONFIG_HOME", ".config").join("hooktrail/config.json")
}

/// `$XDG_STATE_HOME/hooktrail`: the spool and the breaker's state file.
pub fn default_state_dir(env: EnvLookup) -> PathBuf {
    xdg(env, "XDG_STATE_HOME", ".local/state").join("hooktrail")
}

/// `$XDG_STATE_HOME/hooktrail/spool`.
pub fn default_spool_dir(env: EnvLookup) -> PathBuf {
    default_state_dir(env).join("spool")
}

/// `$XDG_DATA_HOME/hooktrail/events.db`.
pub fn default_database_file(env: EnvLookup) -> PathBuf {
    xdg(env, "XDG_DATA_HOME", ".local/share").join("hooktrail/events.db")
}

/// `$XDG_RUNTIME_DIR/hooktrail/collector.sock`, or, where there is no runtime
/// directory (no systemd login session), `/tmp/hooktrail-$UID/collector.sock`.
pub fn default_socket_file(env: EnvLookup) -> PathBuf {
    private_base_dir(env).join("collector.sock")
}

/// Expands a leading `~/` and `$NAME` or `${NAME}` references in a configured
/// path. Unknown variables expand to nothing, as in a shell.
pub fn expand(value: &str, env: EnvLookup) -> PathBuf {
    if !value.starts_with("~/") && !value.contains('$') {
        // Nothing to expand (the common case): the path as written.
        return PathBuf::from(value);
    }
    let mut text = value.to_owned();
    if let Some(rest) = text.strip_prefix("~/") {
        text = format!("{}/{rest}", home(env).display());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_alphanumeric() || next == '_' {
                name.push(next);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        if name.is_empty() {
            out.push('$');
        } else if let Some(value) = env(&name) {
            out.push_str(&value);
        }
    }
    PathBuf::from(out)
}

/// The effective user id, which owns what this process creates.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and its parents) and makes sure it is ours and private:
/// - `dir` itself must be a directory (not a symlink) owned by the effective
///   user; an existing one with a looser mode is tightened to 0700;
/// - every directory above it must be owned by us or root and not writable
///   by other users unless sticky (`/tmp`), so that nobody else can swap
///   `dir` for their own.
///
/// New parents are made 0700 too. Anything else is refused with
/// `PermissionDenied`: a directory someone else made first (under a
/// predictable `/tmp` path, say) would hand our events to them.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let own = euid();
    let refuse = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{what}; refusing to use {}", dir.display()),
        ))
    };
    for ancestor in dir.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            continue;
        }
        let metadata = fs::metadata(ancestor)?;
        let mode = metadata.permissions().mode();
        if metadata.uid() != own && metadata.uid() != 0 {
            return refuse(format!(
                "{} belongs to uid {}, not to us (uid {own}) or root",
                ancestor.display(),
                metadata.uid()
            ));
        }
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return refuse(format!(
                "other users can write in {} (mode {:04o})",
                ancestor.display(),
                mode & 0o7777
            ));
        }
    }
    // Not followed: a symlink would lead wherever its maker chose.
    let metadata = fs::symlink_metadata(dir)?;
    if !metadata.is_dir() || metadata.uid() != own {
        return refuse(format!(
            "{} is not a directory owned by us (uid {own})",
            dir.display()
        ));
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn defaults_follow_xdg_variables() {
        let env = env_of(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            default_config_file(&env),
            PathBuf::from("/h/.config/hooktrail/config.json")
        );
        assert_eq!(
            default_spool_dir(&env),
            PathBuf::from("/h/.local/state/hooktrail/spool")
        );
        assert_eq!(
            default_database_file(&env),
            PathBuf::from("/h/.local/share/hooktrail/events.db")
        );
        assert_eq!(
            default_socket_file(&env),
            PathBuf::from("/run/user/7/hooktrail/collector.sock")
        );
    }

    #[test]
    fn expand_handles_home_and_variables() {
        let env = env_of(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(expand("~/x", &env), PathBuf::from("/h/x"));
        assert_eq!(
            expand("$XDG_RUNTIME_DIR/hooktrail/c.sock", &env),
            PathBuf::from("/run/user/7/hooktrail/c.sock")
        );
        assert_eq!(expand("${HOME}/a/$NOPE/b", &env), PathBuf::from("/h/a//b"));
    }

    #[test]
    fn ensure_private_dir_refuses_a_symlink() {
        let temp = tempfile::tempdir().unwrap();
        let elsewhere = temp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = temp.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let error = ensure_private_dir(&link).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("not a directory owned by us"));
    }

    #[test]
    fn without_home_everything_lives_in_the_users_private_base() {
        let env = env_of(&[("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            default_spool_dir(&env),
            PathBuf::from("/run/user/7/hooktrail/.local/state/hooktrail/spool")
        );
        assert_eq!(
            fallback_spool_dir(&env),
            PathBuf::from("/run/user/7/hooktrail/spool")
        );
        let bare = env_of(&[]);
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        assert_eq!(
            default_spool_dir(&bare),
            PathBuf::from(format!("/tmp/hooktrail-{uid}/.local/state/hooktrail/spool"))
        );
        assert_eq!(
            default_socket_file(&bare),
            PathBuf::from(format!("/tmp/hooktrail-{uid}/collector.sock"))
        );
    }

    #[test]
    fn ensure_private_dir_refuses_a_dir_under_one_others_can_write_in() {
        let temp = tempfile::tempdir().unwrap();
        let open = temp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let error = ensure_private_dir(&open.join("spool")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        // Sticky, as /tmp is: each user's entries are their own.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&open.join("spool")).unwrap();
    }

    #[test]
    fn ensure_private_dir_tightens_mode() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
