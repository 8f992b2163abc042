//! Helpers shared by the emitter's integration tests: a private environment
//! per test (HOME, XDG directories, socket, spool and state paths all in a
//! fresh temporary directory), running the real binary with some stdin, a
//! collector socket that answers what the test says, a pub/sub subscriber,
//! and readers for the spool and the stream.
#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_hooktrail-emit");

/// One test's private world.
pub struct World {
    /// Holds every file the emitter may touch; removed at the end.
    pub dir: tempfile::TempDir,
    /// The environment the emitter runs with (nothing is inherited).
    pub vars: HashMap<String, String>,
}

/// What the emitter gets on fd 0.
pub enum Stdin {
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// `/dev/null`.
    Null,
    /// No fd 0 at all (closed before exec).
    Closed,
}

/// One finished run of the emitter.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout: must always be empty.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Run {
    /// The invariants of every hook run: exit 0, nothing on stdout.
    pub fn assert_silent_success(&self) {
        assert_eq!(self.code, Some(0), "exit code; stderr: {}", self.stderr);
        assert!(
            self.stdout.is_empty(),
            "stdout must stay empty, got {:?}",
            String::from_utf8_lossy(&self.stdout)
        );
    }
}

impl World {
    /// A fresh world: no config file, no Redis, no collector.
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut vars = HashMap::new();
        for (name, sub) in [
            ("HOME", "home"),
            ("XDG_CONFIG_HOME", "home/.config"),
            ("XDG_STATE_HOME", "home/.local/state"),
            ("XDG_RUNTIME_DIR", "run"),
        ] {
            vars.insert(name.to_owned(), root.join(sub).display().to_string());
        }
        vars.insert(
            "HOOKTRAIL_SOCKET".to_owned(),
            root.join("run/collector.sock").display().to_string(),
        );
        vars.insert(
            "HOOKTRAIL_SPOOL_DIR".to_owned(),
            root.join("state/spool").display().to_string(),
        );
        vars.insert(
            "HOOKTRAIL_STATE_DIR".to_owned(),
            root.join("state").display().to_string(),
        );
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        World { dir, vars }
    }

    /// Sets one environment variable of the emitter.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut World {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// Removes one environment variable of the emitter.
    pub fn unset(&mut self, name: &str) -> &mut World {
        self.vars.remove(name);
        self
    }

    /// A path inside the world.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        PathBuf::from(&self.vars["HOOKTRAIL_SPOOL_DIR"])
    }

    /// The state directory (the breaker's file).
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(&self.vars["HOOKTRAIL_STATE_DIR"])
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(&self.vars["HOOKTRAIL_SOCKET"])
    }

    /// Runs the emitter in hook mode.
    pub fn hook(&self, stdin: Stdin) -> Run {
        self.run(&[], stdin)
    }

    /// Runs the emitter in hook mode with one extra variable (an event id).
    pub fn hook_with_id(&self, id: &str, payload: &str) -> Run {
        let mut command = self.command(&[]);
        command.env("HOOKTRAIL_TEST_EVENT_ID", id);
        execute(command, Stdin::Bytes(payload.as_bytes().to_vec()))
    }

    /// Runs the emitter with arguments.
    pub fn run(&self, arguments: &[&str], stdin: Stdin) -> Run {
        execute(self.command(arguments), stdin)
    }

    /// The command, with exactly this world's environment. With
    /// `HOOKTRAIL_TEST_RUNNER` (scripts/test-aarch64 sets `qemu-aarch64`) the
    /// binary runs under that emulator: a binary of another architecture
    /// cannot be exec'd directly without binfmt_misc.
    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = match std::env::var_os("HOOKTRAIL_TEST_RUNNER") {
            Some(runner) => {
                let mut command = Command::new(runner);
                command.arg(BINARY);
                command
            }
            None => Command::new(BINARY),
        };
        command
            .args(arguments)
            .env_clear()
            .envs(&self.vars)
            .current_dir(self.dir.path());
        command
    }

    /// Every line in the spool's files (claimed or not), in file order.
    pub fn spool_lines(&self) -> Vec<String> {
        spool_lines(&self.spool_dir())
    }
}

/// Every line of every `spool-*` file in `dir`.
pub fn spool_lines(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("spool-")
        })
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// Spawns, feeds stdin from a thread (so a 20 MiB payload cannot deadlock),
/// and waits.
pub fn execute(mut command: Command, stdin: Stdin) -> Run {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let bytes = match stdin {
        Stdin::Bytes(bytes) => {
            command.stdin(Stdio::piped());
            Some(bytes)
        }
        Stdin::Null => {
            command.stdin(Stdio::null());
            None
        }
        Stdin::Closed => {
            command.stdin(Stdio::null());
            // SAFETY: close(2) is async-signal-safe; it runs in the child
            // between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::close(0);
                    Ok(())
                });
            }
            None
        }
    };
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn hooktrail-emit");
    let writer = child.stdin.take().map(|mut pipe| {
        let bytes = bytes.unwrap_or_default();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output().expect("wait for hooktrail-emit");
    let elapsed = started.elapsed();
    if let Some(writer) = writer {
        writer.join().unwrap();
    }
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    }
}

/// One line of a fixture, by hook event name (the first such line).
pub fn fixture_line(hook: &str) -> String {
    hooktrail_testkit::all_fixtures()
        .into_iter()
        .find(|line| line.contains(&format!("\"hook_event_name\":\"{hook}\"")))
        .unwrap_or_else(|| panic!("no {hook} fixture"))
}

/// Parses an envelope line.
pub fn envelope(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

/// The envelopes in a stream, read with XRANGE (each entry's `event` field).
pub fn stream_envelopes(server: &hooktrail_testkit::RedisServer, key: &str) -> Vec<Value> {
    let flat = server.command(&["XRANGE", key, "-", "+"]);
    let lines: Vec<&str> = flat.lines().collect();
    let mut envelopes = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if *line == "event" {
            envelopes.push(envelope(lines[index + 1]));
        }
    }
    envelopes
}

/// The ids of a list of envelopes.
pub fn ids(envelopes: &[Value]) -> Vec<String> {
    envelopes
        .iter()
        .map(|envelope| envelope["id"].as_str().unwrap().to_owned())
        .collect()
}

/// How the in-test collector answers each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `ok`: delivered.
    Ok,
    /// `error ...`: rejected.
    Error,
}

/// A stand-in for the collector's socket: accepts connections, records each
/// line, and answers as told.
pub struct FakeCollector {
    /// Lines received, in order.
    pub lines: mpsc::Receiver<String>,
}

impl FakeCollector {
    /// Listens on `path` and answers every line with `answer`.
    pub fn start(path: &Path, answer: Answer) -> FakeCollector {
        let listener = UnixListener::bind(path).expect("bind the test socket");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { break };
                        let _ = sender.send(line);
                        let reply: &[u8] = match answer {
                            Answer::Ok => b"ok\n",
                            Answer::Error => b"error rejected by the test\n",
                        };
                        if writer.write_all(reply).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FakeCollector { lines }
    }

    /// The next line received, waiting up to five seconds.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(5))
            .expect("a line at the fake collector")
    }
}

/// A raw pub/sub subscriber on a test Redis.
pub struct Subscriber {
    /// The subscribed connection, read for messages.
    reader: BufReader<TcpStream>,
}

impl Subscriber {
    /// Subscribes to `channel` and waits for the confirmation.
    pub fn start(port: u16, channel: &str) -> Subscriber {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let command = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        stream.write_all(command.as_bytes()).unwrap();
        let mut subscriber = Subscriber {
            reader: BufReader::new(stream),
        };
        let confirmation = subscriber.read_array();
        assert_eq!(confirmation[0], "subscribe");
        subscriber
    }

    /// The next published message's content.
    pub fn next_message(&mut self) -> String {
        let message = self.read_array();
        assert_eq!(message[0], "message");
        message[2].clone()
    }

    fn read_array(&mut self) -> Vec<String> {
        let header = self.line();
        let count: usize = header[1..].parse().unwrap();
        (0..count)
            .map(|_| {
                let item = self.line();
                match item.as_bytes()[0] {
                    b'$' => {
                        let length: usize = item[1..].parse().unwrap();
                        let mut data = vec![0u8; length + 2];
                        self.reader.read_exact(&mut data).unwrap();
                        String::from_utf8_lossy(&data[..length]).into_owned()
                    }
                    _ => item[1..].to_owned(),
                }
            })
            .collect()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read from the subscription");
        line.trim_end().to_owned()
    }
}
