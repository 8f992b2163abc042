//! `scripts/install` and `scripts/uninstall` (issue 23), run for real in a
//! throwaway HOME with the binaries the tests built (`--bin-dir`, so no
//! fat-LTO build): the binaries land in `~/.local/bin`, the hook is
//! registered, the unit passes `systemd-analyze verify`, a collector started
//! by hand (this machine has no user systemd) answers and prints the same
//! link install printed, an event from the installed hook is stored, and
//! uninstall puts the settings file back byte for byte. `--sender` against a
//! private password-protected Redis, and `--system` into a staging root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hooktrail_testkit::{free_port, wait_until, KillOnDrop, RedisServer};
use serde_json::Value;

const COLLECTOR: &str = env!("CARGO_BIN_EXE_hooktrail-collector");
const LONG: Duration = Duration::from_secs(60);

/// This checkout (the collector crate's parent), whose scripts run.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A settings file as a person writes it: four-space indents, a hook of
/// their own. Only a byte-for-byte restore gives it back.
const OWN_SETTINGS: &str = "{\n    \"model\": \"opus\",\n    \"hooks\": {\n        \"PreToolUse\": [{\"matcher\": \"Bash\", \"hooks\": [{\"type\": \"command\", \"command\": \"/usr/local/bin/guard\"}]}]\n    }\n}\n";

/// One throwaway HOME and the environment every command runs with.
struct Home {
    dir: tempfile::TempDir,
    http: String,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::set_permissions(dir.path().join("run"), PermissionsExt::from_mode(0o700)).unwrap();
        Home {
            dir,
            http: format!("127.0.0.1:{}", free_port()),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.home().join(relative)
    }

    /// A command with only this HOME's environment (and `PATH`). Its
    /// `XDG_RUNTIME_DIR` holds no user bus, so `systemctl --user` fails as
    /// on this machine, wherever the test runs.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("HOOKTRAIL_HTTP", &self.http)
            .current_dir(self.home())
            .stdin(Stdio::null());
        command
    }

    fn script(&self, name: &str, arguments: &[&str]) -> Output {
        self.command(workspace_root().join("scripts").join(name))
            .args(arguments)
            .output()
            .unwrap()
    }

    fn settings(&self) -> PathBuf {
        self.path(".claude/settings.json")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.path(".local/state/hooktrail/http-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// The directory holding both binaries the tests built.
fn bin_dir() -> String {
    Path::new(COLLECTOR).parent().unwrap().display().to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_success(output: &Output, what: &str) -> String {
    let all = text(output);
    assert!(output.status.success(), "{what} failed: {all}");
    all
}

/// The command the registered hook runs, from the settings file.
fn hook_command(settings: &Value, event: &str) -> Vec<String> {
    settings["hooks"][event]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["hooks"].as_array().unwrap())
        .map(|entry| entry["command"].as_str().unwrap().to_owned())
        .filter(|command| command.ends_with("hooktrail-emit"))
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs the hook as Claude Code would: the command, a payload on stdin.
fn run_hook(home: &Home, command: &str, session: &str) {
    let mut child = home
        .command(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let payload = serde_json::json!({"session_id": session, "cwd": "/w", "hook_event_name": "UserPromptSubmit",
        "prompt": "installed", "transcript_path": "/nonexistent"});
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        payload.to_string().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success() && output.stdout.is_empty());
}

fn sqlite_count(database: &Path, session: &str) -> i64 {
    let output = Command::new("sqlite3")
        .arg(database)
        .arg(format!(
            "SELECT count(*) FROM events WHERE session_id = '{session}'"
        ))
        .output()
        .expect("sqlite3 (apt-get install -y sqlite3)");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn systemd_analyze_verify(unit: &Path, user: Option<&Home>) {
    let mut command = match user {
        Some(home) => {
            let mut command = home.command("systemd-analyze");
            command.arg("--user");
            command
        }
        None => Command::new("systemd-analyze"),
    };
    let output = command
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (apt-get install -y systemd)");
    assert_success(
        &output,
        &format!("systemd-analyze verify {}", unit.display()),
    );
}

#[test]
fn install_leaves_binaries_hook_and_link_and_uninstall_restores_the_settings() {
    let home = Home::new();
    std::fs::create_dir_all(home.path(".claude")).unwrap();
    std::fs::write(home.settings(), OWN_SETTINGS).unwrap();

    let first = assert_success(
        &home.script("install", &["--bin-dir", &bin_dir()]),
        "install",
    );
    for name in ["hooktrail-emit", "hooktrail-collector"] {
        let installed = home.path(&format!(".local/bin/{name}"));
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(Path::new(&bin_dir()).join(name)).unwrap()
        );
    }
    let settings = read_json(&home.settings());
    let emitter = home
        .path(".local/bin/hooktrail-emit")
        .canonicalize()
        .unwrap();
    for event in ["PreToolUse", "UserPromptSubmit", "Stop", "SessionEnd"] {
        assert_eq!(
            hook_command(&settings, event),
            [emitter.display().to_string()],
            "{event}"
        );
    }
    assert_eq!(
        settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
        "/usr/local/bin/guard"
    );
    assert!(first.contains("no user systemd here"), "{first}");
    // The link carries a one-time code (issue 24), never the token.
    let url = format!("http://{}/#code=", home.http);
    assert!(
        !first.contains(&home.token()),
        "install printed the token: {first}"
    );
    assert!(first.contains(&url), "install did not print {url}: {first}");
    let unit = home.path(".config/systemd/user/hooktrail-collector.service");
    systemd_analyze_verify(&unit, Some(&home));

    // Started by hand, as on a machine without a user systemd; it prints
    // the same link at start.
    let log = home.dir.path().join("collector.log");
    let collector = KillOnDrop(
        home.command(home.path(".local/bin/hooktrail-collector"))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the collector to print the page's link", LONG, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("open the page: {url}"))
    });

    // Again: idempotent, and now it finds the collector answering.
    let installed_settings = std::fs::read(home.settings()).unwrap();
    let again = assert_success(
        &home.script("install", &["--bin-dir", &bin_dir(), "--wait", "30"]),
        "install again",
    );
    assert!(again.contains("already installed"), "{again}");
    assert!(again.contains("the collector answers"), "{again}");
    assert!(again.contains(&url), "{again}");
    assert_eq!(std::fs::read(home.settings()).unwrap(), installed_settings);

    // The hook Claude Code would run delivers to the collector's socket.
    run_hook(
        &home,
        &hook_command(&settings, "UserPromptSubmit")[0],
        "installed-session",
    );
    let database = home.path(".local/share/hooktrail/events.db");
    wait_until("the hook's event in the database", LONG, || {
        sqlite_count(&database, "installed-session") == 1
    });
    drop(collector);

    let removed = assert_success(&home.script("uninstall", &[]), "uninstall");
    assert_eq!(
        std::fs::read_to_string(home.settings()).unwrap(),
        OWN_SETTINGS,
        "{removed}"
    );
    let backups: Vec<String> = std::fs::read_dir(home.path(".claude"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "settings.json")
        .collect();
    assert!(
        !backups.is_empty()
            && backups
                .iter()
                .all(|name| name.starts_with("settings.json.hooktrail-backup-")),
        "{backups:?}"
    );
    for gone in [
        ".local/bin/hooktrail-emit",
        ".local/bin/hooktrail-collector",
        ".config/systemd/user/hooktrail-collector.service",
        ".local/share/hooktrail/install",
    ] {
        assert!(!home.path(gone).exists(), "{gone} is still there");
    }
    assert_eq!(
        sqlite_count(&database, "installed-session"),
        1,
        "the database is kept"
    );
    assert!(removed.contains("--purge"), "{removed}");

    // A second round, undone with --purge: the database goes too.
    assert_success(
        &home.script("install", &["--bin-dir", &bin_dir()]),
        "install",
    );
    assert_success(&home.script("uninstall", &["--purge"]), "uninstall --purge");
    assert_eq!(
        std::fs::read_to_string(home.settings()).unwrap(),
        OWN_SETTINGS
    );
    assert!(!home.path(".local/share/hooktrail").exists());
    assert!(!home.path(".local/state/hooktrail").exists());
}

#[test]
fn a_sender_install_delivers_through_redis_and_keeps_the_password_private() {
    let password = "s3cret/with@odd:chars";
    let redis = RedisServer::start_with(&["--requirepass", password]);
    let home = Home::new();
    let output = home
        .command(workspace_root().join("scripts/install"))
        .args(["--sender", "--redis", &redis.url(), "--bin-dir", &bin_dir()])
        .env("HOOKTRAIL_REDIS_PASSWORD", password)
        .output()
        .unwrap();
    let all = assert_success(&output, "install --sender");
    assert!(!all.contains(password), "the password was printed: {all}");
    assert!(all.contains("XADD will work"), "{all}");
    assert!(home.path(".local/bin/hooktrail-emit").exists());
    assert!(!home.path(".local/bin/hooktrail-collector").exists());
    assert!(!home
        .path(".config/systemd/user/hooktrail-collector.service")
        .exists());
    let config = home.path(".config/hooktrail/config.json");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);

    let settings = read_json(&home.settings());
    run_hook(
        &home,
        &hook_command(&settings, "UserPromptSubmit")[0],
        "sender-session",
    );
    let stream = redis.command(&["XRANGE", "hooktrail:events", "-", "+"]);
    assert!(
        stream.contains("sender-session"),
        "not in the stream: {stream}"
    );

    assert_success(&home.script("uninstall", &[]), "uninstall");
    assert!(!config.exists());
    assert!(
        !home.settings().exists(),
        "there was no settings file before install"
    );
    assert!(!home.path(".local/bin/hooktrail-emit").exists());
}

#[test]
fn a_system_install_into_a_staging_root_writes_a_unit_that_verifies() {
    let home = Home::new();
    let root = home.dir.path().join("root");
    let root_text = root.display().to_string();
    let all = assert_success(
        &home.script(
            "install",
            &["--system", "--root", &root_text, "--bin-dir", &bin_dir()],
        ),
        "install --system",
    );
    let env = root.join("etc/hooktrail/collector.env");
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&env).unwrap();
    let token = token.trim().strip_prefix("HOOKTRAIL_TOKEN=").unwrap();
    assert_eq!(token.len(), 64);
    assert!(
        all.contains(&format!("http://{}/#code=", home.http)) && !all.contains(token),
        "{all}"
    );
    assert!(root.join("usr/local/bin/hooktrail-collector").exists());

    // systemd-analyze checks ExecStart's binary exists: point it at the
    // staged one.
    let unit = root.join("etc/systemd/system/hooktrail-collector.service");
    let staged = std::fs::read_to_string(&unit).unwrap().replace(
        "ExecStart=/usr/local/bin/",
        &format!("ExecStart={root_text}/usr/local/bin/"),
    );
    let check = home.dir.path().join("hooktrail-collector.service");
    std::fs::write(&check, staged).unwrap();
    systemd_analyze_verify(&check, None);

    assert_success(
        &home.script("uninstall", &["--system", "--root", &root_text]),
        "uninstall --system",
    );
    assert!(!unit.exists() && !env.exists());
    assert!(!root.join("usr/local/bin/hooktrail-emit").exists());
}
