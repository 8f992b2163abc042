//! The real-browser test: headless Chromium driven through chromedriver
//! (WebDriver is plain HTTP and JSON; the client below is a few functions).
//! It loads the page of a real collector process, emits events with the real
//! emitter, and checks that a new session and its events appear without a
//! reload, that a filter applies and survives a reload, that an event's
//! payload opens, and that the XSS payload of the `tools_basic` fixture
//! stays inert text; then the session list (titles, states, a "waiting for
//! you" session on top), a session's timeline with a subagent running in
//! parallel, its prompts and an edit's diff, the keyboard (`/`, `j`, `k`,
//! Esc), a search hit highlighted and linked to its session, and the
//! overview's charts. It saves the three screenshots the README shows.
//!
//! A missing chromium or chromedriver fails the test with what to run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hooktrail_testkit::{fixture, free_port, wait_until};
use serde_json::{json, Value};

const COLLECTOR: &str = env!("CARGO_BIN_EXE_hooktrail-collector");

fn find_program(names: &[&str]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in path.split(':').chain(["/usr/bin", "/usr/lib/chromium"]) {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("cannot find {names:?}: the browser test needs Chromium and chromedriver; run scripts/setup (or apt-get install -y chromium chromium-driver)");
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http_with(port, method, path, &[], &body)
}

/// One HTTP/1.1 exchange with `Connection: close` and these extra headers.
fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver may keep
    // the connection open whatever the request says.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 65536];
    let (head_end, length) = loop {
        let count = stream.read(&mut buffer).unwrap_or(0);
        if count == 0 {
            break (raw.len(), None);
        }
        raw.extend_from_slice(&buffer[..count]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|line| {
                line.strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            break (end + 4, length);
        }
    };
    if let Some(length) = length {
        while raw.len() < head_end + length {
            let count = stream.read(&mut buffer).unwrap_or(0);
            if count == 0 {
                break;
            }
            raw.extend_from_slice(&buffer[..count]);
        }
    } else {
        let _ = stream.read_to_end(&mut raw);
    }
    let head = String::from_utf8_lossy(&raw[..head_end.min(raw.len())]).into_owned();
    let body = String::from_utf8_lossy(&raw[head_end.min(raw.len())..]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body)
}

/// A WebDriver session.
struct Driver {
    port: u16,
    session: String,
    _process: Process,
}

impl Driver {
    fn start(profile: &Path) -> Driver {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = find_program(&["chromedriver"]);
        let port = free_port();
        let process = Process(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        wait_until(
            "chromedriver to answer /status",
            Duration::from_secs(30),
            || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && http(port, "GET", "/status", None)
                        .1
                        .contains("\"ready\":true")
            },
        );
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                         "--window-size=1600,1000", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let (status, body) = http(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "chromedriver could not start Chromium: {body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        Driver {
            port,
            session,
            _process: process,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "WebDriver {method} {path}: {text}");
        reply["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs a script in the page (WebDriver scripts are not bound by the page's CSP).
    fn script(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": source, "args": [] })),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_owned()
    }

    /// Clicks the element `css` selects, found and clicked in one script:
    /// the session list is redrawn every second or so, so an element found
    /// by one WebDriver call may be stale by the next.
    fn click(&self, css: &str) {
        let clicked = self.call(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "const node = document.querySelector(arguments[0]); if (!node) return false; node.click(); return true;",
                "args": [css]
            })),
        );
        assert_eq!(clicked, json!(true), "nothing to click at {css}");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn wait_for(&self, what: &str, script: &str) {
        // Generous: the suite runs on two cores shared with builds.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.script(script) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let state = self.script("return document.getElementById('conn').textContent + ' | rows: ' + document.querySelectorAll('tr.event').length");
                panic!("timed out waiting for {what} (page: {state})");
            }
            // A polling loop with a deadline, like testkit::wait_until, that
            // reports the page's state when it times out.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        decode_base64(
            self.call("GET", "/screenshot", None)
                .as_str()
                .expect("base64 screenshot"),
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for digit in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | digit as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// Delivers hook payloads like Claude Code does: through the real emitter
/// when it is built next to the collector, else as envelopes on the socket.
fn emit(socket: &Path, root: &Path, payloads: &[String]) {
    let emitter = Path::new(COLLECTOR).with_file_name("hooktrail-emit");
    for payload in payloads {
        if emitter.is_file() {
            let mut child = Command::new(&emitter)
                .env_clear()
                .env("HOME", root.join("home"))
                .env("XDG_CONFIG_HOME", root.join("home/.config"))
                .env("XDG_STATE_HOME", root.join("home/.local/state"))
                .env("HOOKTRAIL_SOCKET", socket)
                .env("HOOKTRAIL_SPOOL_DIR", root.join("emit-spool"))
                .env("HOOKTRAIL_STATE_DIR", root.join("emit-state"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run hooktrail-emit");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(payload.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        } else {
            use std::io::BufRead;
            let envelope = hooktrail_shared::envelope::Envelope::from_hook_stdin(
                payload.as_bytes(),
                hooktrail_shared::envelope::new_event_id(),
                hooktrail_shared::time::now_millis(),
                "browser-test".into(),
            );
            let mut stream =
                std::os::unix::net::UnixStream::connect(socket).expect("collector socket");
            stream
                .write_all(format!("{}\n", envelope.to_json()).as_bytes())
                .unwrap();
            let mut answer = String::new();
            std::io::BufReader::new(stream)
                .read_line(&mut answer)
                .unwrap();
        }
    }
}

/// A collector process in `root` serving the page on `port`, without a
/// token (the page's token flow is not what these tests are about).
fn start_collector(root: &Path, port: u16) -> Process {
    let socket = root.join("run/collector.sock");
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("home/.config")).unwrap();
    let collector = Process(
        Command::new(COLLECTOR)
            .args(["--db", &root.join("data/events.db").display().to_string()])
            .args(["--socket", &socket.display().to_string()])
            .args(["--spool-dir", &root.join("spool").display().to_string()])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .arg("--no-token")
            .env_clear()
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("home/.config"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector"),
    );
    wait_until("the collector's API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/api/health", None).0 == 200
    });
    collector
}

#[test]
fn the_page_shows_sessions_live_with_states_timelines_search_hits_and_charts_and_keeps_markup_inert(
) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let socket = root.join("run/collector.sock");
    let _collector = start_collector(root, port);
    // One earlier session, so the page starts with something.
    emit(&socket, root, &fixture("failures"));

    let driver = Driver::start(&root.join("profile"));
    let page = format!("http://127.0.0.1:{port}/");
    driver.go(&page);
    driver.wait_for(
        "the feed to go live",
        "return document.getElementById('conn').textContent === 'live'",
    );
    driver.wait_for(
        "the earlier events",
        "return document.querySelectorAll('tr.event').length >= 11",
    );

    // A new session appears, with its events, without a reload.
    let tools_basic = fixture("tools_basic");
    let session: Value = serde_json::from_str(&tools_basic[0]).unwrap();
    let session_id = session["session_id"].as_str().unwrap();
    emit(&socket, root, &tools_basic);
    let total = 11 + tools_basic.len();
    driver.wait_for(
        "the new events to stream in",
        &format!("return document.querySelectorAll('tr.event').length >= {total}"),
    );
    driver.wait_for(
        "the new session in the sidebar",
        &format!("return !!document.querySelector('.session[data-session=\"{session_id}\"]')"),
    );

    // A filter applies, lands in the URL and survives a reload.
    driver.type_into("#f-tool", "Write");
    driver.click("#apply");
    driver.wait_for(
        "only Write events",
        "const rows = [...document.querySelectorAll('tr.event')]; \
         return rows.length >= 2 && rows.every(r => r.children[6].textContent === 'Write')",
    );
    assert!(driver
        .script("return location.search")
        .as_str()
        .unwrap()
        .contains("tool=Write"));
    driver.go(&format!("{page}?tool=Write"));
    driver.wait_for("the filter after a reload", "return document.getElementById('f-tool').value === 'Write' && document.querySelectorAll('tr.event').length >= 2");

    // The payload opens, pretty-printed, and the markup in it stays text.
    driver.click("tr.event");
    driver.wait_for("the payload", "return document.getElementById('payload').textContent.includes('\"tool_name\": \"Write\"')");
    let payload = driver.script("return document.getElementById('payload').textContent");
    assert!(
        payload
            .as_str()
            .unwrap()
            .contains("<img src=x onerror=alert(1)>"),
        "{payload}"
    );
    assert_eq!(
        driver.script("return document.querySelectorAll('img').length"),
        json!(0),
        "no img element was created"
    );
    assert_eq!(
        driver.script("return document.querySelectorAll('#payload *').length"),
        json!(0),
        "the payload is one text node"
    );
    let (alert_status, _) = http(
        driver.port,
        "GET",
        &format!("/session/{}/alert/text", driver.session),
        None,
    );
    assert_eq!(alert_status, 404, "no alert opened");

    // The session list: titles, project and machine, state badges.
    emit(&socket, root, &fixture("subagent"));
    driver.go(&page);
    driver.wait_for("all events", "return document.getElementById('conn').textContent === 'live' && document.querySelectorAll('tr.event').length >= 33");
    let subagent_session = serde_json::from_str::<Value>(&fixture("subagent")[0]).unwrap()
        ["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    driver.wait_for(
        "the sessions list with titles and states",
        &format!(
            "const row = document.querySelector('.session[data-session=\"{subagent_session}\"]'); \
             return !!row && row.querySelector('.title').textContent.length > 3 && !!row.querySelector('.badge.ended')"
        ),
    );

    // A session whose main agent runs a long Bash call while a subagent
    // works in parallel, then a session that waits for a permission.
    let parallel = parallel_session_payloads("browser-parallel-session");
    emit(&socket, root, &parallel);
    let waiting: Vec<String> = [
        json!({"session_id": "browser-waiting-session", "cwd": "/home/dev/shop", "hook_event_name": "UserPromptSubmit", "prompt": "Deploy the shop to staging", "transcript_path": "/tmp/w.jsonl"}),
        json!({"session_id": "browser-waiting-session", "cwd": "/home/dev/shop", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_w1", "tool_input": {"command": "./deploy.sh staging"}}),
        json!({"session_id": "browser-waiting-session", "cwd": "/home/dev/shop", "hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": {"command": "./deploy.sh staging"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    emit(&socket, root, &waiting);
    driver.wait_for(
        "the waiting session at the top of the list, highlighted",
        "const first = document.querySelector('#sessions .session'); \
         return !!first && first.dataset.session === 'browser-waiting-session' && first.classList.contains('state-waiting') \
           && first.querySelector('.badge').textContent.startsWith('waiting for you') \
           && document.querySelector('.waiting-note') !== null",
    );
    let list_png = driver.screenshot();

    // The session view: a timeline with the subagent's lane beside the main
    // agent's, its spans overlapping the main agent's Bash call.
    driver.click(".session[data-session=\"browser-parallel-session\"]");
    driver.wait_for(
        "the timeline with two lanes",
        "return document.querySelectorAll('#timeline .lane-label').length === 2 \
           && document.querySelectorAll('#timeline rect.span.tool').length >= 3",
    );
    let overlap = driver.script(
        "const spans = [...document.querySelectorAll('#timeline rect.span.tool')].map(r => ({ \
             x: +r.getAttribute('x'), w: +r.getAttribute('width'), y: +r.getAttribute('y'), t: r.textContent })); \
         const main = spans.find(s => s.t.startsWith('Bash')); \
         const sub = spans.find(s => s.y > main.y); \
         return !!sub && sub.x >= main.x && sub.x + sub.w <= main.x + main.w + 1",
    );
    assert_eq!(
        overlap,
        json!(true),
        "the subagent's call runs inside the main agent's"
    );
    driver.wait_for(
        "the prompts and the edit's diff",
        "return document.getElementById('sv-prompts').textContent.includes('Rename the helper') \
           && document.getElementById('sd-agents').textContent.includes('Explore') \
           && document.querySelector('#sv-edits pre.diff .del').textContent === '- fn old_name() {}\\n' \
           && document.querySelector('#sv-edits pre.diff .add').textContent === '+ fn new_name() {}\\n'",
    );
    assert!(driver
        .script("return location.hash")
        .as_str()
        .unwrap()
        .starts_with("#/session/browser-parallel-session"));
    // A span opens its payload, as text.
    driver.script("document.querySelector('#timeline rect.span.tool').dispatchEvent(new MouseEvent('click', {bubbles: true}))");
    driver.wait_for(
        "the span's payload",
        "return !document.getElementById('event-detail').hidden && document.getElementById('payload').textContent.includes('tool_name')",
    );
    let timeline_png = driver.screenshot();
    // Esc closes the detail pane; j and k move through the events.
    driver.script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))",
    );
    driver.wait_for(
        "the detail pane to close",
        "return document.getElementById('event-detail').hidden && !location.hash.includes('/event/')",
    );
    driver.script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'j', bubbles: true}))",
    );
    driver.wait_for(
        "j to open the first event",
        "return document.querySelector('tr.event.selected') === document.querySelector('tr.event')",
    );
    driver.script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'j', bubbles: true}))",
    );
    driver.wait_for("j to move down", "return document.querySelector('tr.event.selected') === document.querySelectorAll('tr.event')[1]");
    driver.script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'k', bubbles: true}))",
    );
    driver.wait_for("k to move up", "return document.querySelector('tr.event.selected') === document.querySelector('tr.event') && location.hash.includes('/event/')");

    // Search: `/` focuses it, a hit is highlighted with <mark> and links to
    // the event in its session.
    driver.go(&page);
    driver.wait_for(
        "the feed",
        "return document.getElementById('conn').textContent === 'live'",
    );
    driver.script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: '/', bubbles: true}))",
    );
    assert_eq!(
        driver.script("return document.activeElement.id"),
        json!("f-q")
    );
    driver.type_into("#f-q", "HAYSTACK-needle");
    driver.click("#apply");
    driver.wait_for(
        "the search hit, highlighted",
        "const rows = [...document.querySelectorAll('tr.event')]; \
         return rows.length === 1 && rows[0].querySelector('mark').textContent === 'haystack-NEEDLE'",
    );
    driver.click("tr.event a.session-link");
    driver.wait_for(
        "the hit in its session",
        "return location.hash.startsWith('#/session/browser-parallel-session/event/') \
           && document.getElementById('payload').textContent.includes('haystack-NEEDLE') \
           && document.querySelectorAll('#timeline .lane-label').length === 2",
    );

    // The overview: events per minute stacked by hook, cost per day.
    driver.go(&format!("{page}#/overview"));
    driver.wait_for(
        "the overview's charts",
        "return document.querySelectorAll('#chart-events svg.bars rect').length > 0 \
           && document.querySelectorAll('#chart-events .legend .key').length > 3 \
           && !!document.querySelector('#chart-cost-model svg.bars') && !!document.querySelector('#chart-cost-project svg.bars')",
    );
    let overview_png = driver.screenshot();

    // Every run saves its screenshots beside the build; the README's copies
    // in docs/ are refreshed only on request, so a test run leaves the tree
    // clean.
    for (name, png) in [
        ("screenshot-list.png", &list_png),
        ("screenshot-timeline.png", &timeline_png),
        ("screenshot-overview.png", &overview_png),
    ] {
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&saved, png).unwrap();
        if std::env::var_os("HOOKTRAIL_UPDATE_SCREENSHOT").is_some() {
            let docs = hooktrail_testkit::workspace_root().join("docs");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(name), png).unwrap();
        }
    }
}

/// A session whose main agent runs a Bash call during which a subagent
/// starts, reads a file and stops, then edits a file; one Bash command
/// holds the search test's term.
fn parallel_session_payloads(session: &str) -> Vec<String> {
    let common = |hook: &str| json!({"session_id": session, "cwd": "/home/dev/parser", "transcript_path": "/tmp/p.jsonl", "hook_event_name": hook, "prompt_id": "p-browser-parallel"});
    let with = |hook: &str, fields: Value| {
        let mut payload = common(hook);
        for (key, value) in fields.as_object().unwrap() {
            payload[key] = value.clone();
        }
        payload.to_string()
    };
    let agent = json!({"agent_id": "a0browser0parallel", "agent_type": "Explore"});
    let merge = |base: &Value, extra: Value| {
        let mut merged = base.clone();
        for (key, value) in extra.as_object().unwrap() {
            merged[key] = value.clone();
        }
        merged
    };
    vec![
        with(
            "SessionStart",
            json!({"source": "startup", "model": "claude-sonnet-4-5"}),
        ),
        with(
            "UserPromptSubmit",
            json!({"prompt": "Rename the helper and check the tests"}),
        ),
        with(
            "PreToolUse",
            json!({"tool_name": "Bash", "tool_use_id": "toolu_p1", "tool_input": {"command": "cargo test haystack-NEEDLE"}}),
        ),
        with("SubagentStart", agent.clone()),
        with(
            "PreToolUse",
            merge(
                &agent,
                json!({"tool_name": "Read", "tool_use_id": "toolu_p2", "tool_input": {"file_path": "/home/dev/parser/src/lib.rs"}}),
            ),
        ),
        with(
            "PostToolUse",
            merge(
                &agent,
                json!({"tool_name": "Read", "tool_use_id": "toolu_p2", "tool_input": {"file_path": "/home/dev/parser/src/lib.rs"}, "tool_response": {"type": "text"}}),
            ),
        ),
        with(
            "SubagentStop",
            merge(&agent, json!({"last_assistant_message": "found it"})),
        ),
        with(
            "PostToolUse",
            json!({"tool_name": "Bash", "tool_use_id": "toolu_p1", "tool_input": {"command": "cargo test haystack-NEEDLE"}, "tool_response": {"stdout": "ok", "stderr": ""}}),
        ),
        with(
            "PreToolUse",
            json!({"tool_name": "Edit", "tool_use_id": "toolu_p3", "tool_input": {"file_path": "/home/dev/parser/src/lib.rs", "old_string": "fn old_name() {}", "new_string": "fn new_name() {}"}}),
        ),
        with(
            "PostToolUse",
            json!({"tool_name": "Edit", "tool_use_id": "toolu_p3", "tool_input": {"file_path": "/home/dev/parser/src/lib.rs"}, "tool_response": {"filePath": "/home/dev/parser/src/lib.rs"}}),
        ),
        with("Stop", json!({"stop_hook_active": false})),
    ]
}

/// Issue 20: after the user opts in, a browser notification fires when a
/// session starts waiting, and the tab title counts the waiting sessions.
#[test]
fn a_session_that_starts_waiting_fires_a_browser_notification_and_counts_in_the_title() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let socket = root.join("run/collector.sock");
    let _collector = start_collector(root, port);
    let driver = Driver::start(&root.join("profile"));
    driver.go(&format!("http://127.0.0.1:{port}/"));
    driver.wait_for(
        "the alerts panel",
        "return !!document.getElementById('alerts-notify') && document.title === 'hooktrail'",
    );
    // What the permission prompt would do when the user clicks "Allow".
    driver.call(
        "POST",
        "/permissions",
        Some(json!({"descriptor": {"name": "notifications"}, "state": "granted"})),
    );
    driver.click("#alerts-notify");
    driver.wait_for(
        "the opt-in",
        "return localStorage.getItem('hooktrail-notify') === 'on'",
    );
    let session = |event: &str, extra: &str| {
        format!(
            r#"{{"session_id":"sess-notify","transcript_path":"/none.jsonl","cwd":"/home/dev/api","hook_event_name":"{event}"{extra}}}"#
        )
    };
    emit(
        &socket,
        root,
        &[
            session("UserPromptSubmit", r#","prompt":"deploy""#),
            session(
                "PermissionRequest",
                r#","tool_name":"Bash","tool_input":{"command":"ls"}"#,
            ),
        ],
    );
    driver.wait_for(
        "the waiting count in the title",
        "return document.title === '(1) hooktrail'",
    );
    driver.wait_for(
        "the browser notification",
        "return document.documentElement.dataset.lastNotification === 'hooktrail: session is waiting for you'",
    );
    emit(
        &socket,
        root,
        &[session(
            "PostToolUse",
            r#","tool_name":"Bash","tool_input":{"command":"ls"},"tool_response":{}"#,
        )],
    );
    driver.wait_for(
        "the title without a count",
        "return document.title === 'hooktrail'",
    );
}

/// A collector process for one test: its files under `root`, HTTP on
/// `port`, and `extra` flags.
fn collector_process(root: &Path, port: u16, extra: &[&str]) -> Process {
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("home/.config")).unwrap();
    Process(
        collector_command(root, port, &[])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector"),
    )
}

/// The collector's command line for `root` and `port`, after `first` (a
/// subcommand such as `url`).
fn collector_command(root: &Path, port: u16, first: &[&str]) -> Command {
    let mut command = Command::new(COLLECTOR);
    command
        .args(first)
        .args(["--db", &root.join("data/events.db").display().to_string()])
        .args([
            "--socket",
            &root.join("run/collector.sock").display().to_string(),
        ])
        .args(["--spool-dir", &root.join("spool").display().to_string()])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("HOME", root.join("home"))
        .env("XDG_CONFIG_HOME", root.join("home/.config"))
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// The characters that make shown text differ from what runs (DESIGN §7):
/// bidi controls, zero-width characters, C0 and C1 controls, the Unicode
/// line and paragraph separators.
const HIDDEN: &[char] = &[
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}',
    '\u{FEFF}', '\u{0001}', '\u{0007}', '\u{001B}', '\u{007F}', '\u{0085}', '\u{009B}', '\u{2028}',
    '\u{2029}',
];

#[test]
fn hidden_characters_in_events_show_as_visible_escapes_and_a_bad_fragment_still_draws_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let _collector = collector_process(root, port, &["--no-token"]);
    wait_until("the collector's API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/api/health", None).0 == 200
    });
    let all: String = HIDDEN.iter().map(|c| format!("{c}x")).collect();
    let session = "browser-hidden-characters";
    let common = json!({"session_id": session, "cwd": "/home/dev/pro\u{2066}ject", "transcript_path": "/tmp/h.jsonl", "prompt_id": "p-hidden"});
    let with = |fields: Value| {
        let mut payload = common.clone();
        for (key, value) in fields.as_object().unwrap() {
            payload[key] = value.clone();
        }
        payload.to_string()
    };
    // The issue's command: shown as `X=echo ok  touch /tmp/x; #`, run as `touch` first.
    let command = "X=\u{202E}\u{202D} touch /tmp/x;\u{202C} \u{202D}echo ok # \u{202C}\u{202C}";
    emit(
        &root.join("run/collector.sock"),
        root,
        &[
            with(json!({"hook_event_name": "UserPromptSubmit", "prompt": format!("Fix it {all}")})),
            with(
                json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_h1", "tool_input": {"command": command}}),
            ),
            with(
                json!({"hook_event_name": "PreToolUse", "tool_name": "Write", "tool_use_id": "toolu_h2", "tool_input": {"file_path": "/tmp/gnp\u{202E}.exe", "content": all}}),
            ),
            with(json!({"hook_event_name": "Notification", "message": all})),
        ],
    );

    let driver = Driver::start(&root.join("profile"));
    let page = format!("http://127.0.0.1:{port}/");
    driver.go(&format!("{page}#/session/{session}"));
    driver.wait_for(
        "the session's events, prompts, edits and timeline",
        "return document.querySelectorAll('tr.event').length >= 4 \
           && document.getElementById('sv-prompts').textContent.includes('Fix it') \
           && document.querySelectorAll('#sv-edits .edit').length === 1 \
           && document.querySelectorAll('#timeline rect.span.tool').length >= 2",
    );
    driver.click("tr.event");
    driver.wait_for(
        "the payload",
        "return !document.getElementById('event-detail').hidden",
    );
    // Every piece of text the page shows: text nodes (SVG titles included),
    // tooltips, suggestions and the document's title.
    let shown = driver.script(
        "const texts = [document.title]; \
         const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT); \
         while (walker.nextNode()) texts.push(walker.currentNode.data); \
         for (const node of document.querySelectorAll('[title]')) texts.push(node.getAttribute('title')); \
         for (const node of document.querySelectorAll('option')) texts.push(node.value, node.label); \
         return texts.join('\\n')",
    );
    let shown = shown.as_str().unwrap();
    let raw: Vec<String> = HIDDEN
        .iter()
        .filter(|c| shown.contains(**c))
        .map(|c| format!("U+{:04X}", *c as u32))
        .collect();
    assert!(raw.is_empty(), "raw hidden characters in the page: {raw:?}");
    let missing: Vec<String> = HIDDEN
        .iter()
        .map(|c| format!("⟨U+{:04X}⟩", *c as u32))
        .filter(|escape| !shown.contains(escape.as_str()))
        .collect();
    assert!(missing.is_empty(), "escapes never shown: {missing:?}");
    let summaries = driver.script(
        "return [...document.querySelectorAll('td.summary')].map(td => td.textContent).join('\\n')",
    );
    let summaries = summaries.as_str().unwrap();
    assert!(
        summaries.contains("⚠ X=⟨U+202E⟩⟨U+202D⟩ touch /tmp/x;⟨U+202C⟩ ⟨U+202D⟩echo ok"),
        "the command reads in the order it runs, marked: {summaries}"
    );
    assert!(summaries.contains("⚠ /tmp/gnp⟨U+202E⟩.exe"), "{summaries}");
    let warnings = driver.script("return document.querySelectorAll('.hidden-warning').length");
    assert!(warnings.as_i64().unwrap() >= 4, "warning marks: {warnings}");

    // A malformed % sequence in the fragment does not break the page.
    // (A new query string each time, so each is a fresh load.)
    for (load, fragment) in ["#/session/%E0%A4%A", "#code=%zz", "#/event/%"]
        .iter()
        .enumerate()
    {
        driver.go(&format!("{page}?load={load}{fragment}"));
        driver.wait_for(
            &format!("the page to draw with {fragment}"),
            "return document.getElementById('conn').textContent === 'live' \
               && document.querySelectorAll('#sessions .session').length >= 1",
        );
    }
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        found.push((path, bytes));
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// Every string in `text` that looks like a credential: each run of at
/// least 24 token characters (`A-Za-z0-9._~-`), and each suffix of a run
/// that starts like a page token or a binder (`p2.`, `b1.`), in case a
/// stored key's bytes run into it.
fn token_like(text: &str) -> Vec<String> {
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    let mut found = Vec::new();
    for run in text
        .split(|c: char| !is_token(c))
        .filter(|run| run.len() >= 24)
    {
        found.push(run.to_owned());
        for (at, _) in run.match_indices("p2.").chain(run.match_indices("b1.")) {
            if at > 0 {
                found.push(run[at..].to_owned());
            }
        }
    }
    found
}

/// Every cookie in a Chromium profile's `Cookies` database: host, name and
/// value, the value decrypted when Chromium encrypted it with the key every
/// Chromium on Linux without a keyring shares ("v10"), as anyone reading
/// the profile could.
fn profile_cookies(profile: &Path) -> Vec<(String, String, String)> {
    let mut cookies = Vec::new();
    for (path, _) in files_under(profile) {
        if path.file_name().and_then(|name| name.to_str()) != Some("Cookies") {
            continue;
        }
        let connection = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut statement = connection
            .prepare("SELECT host_key, name, value, encrypted_value FROM cookies")
            .unwrap();
        let rows = statement
            .query_map([], |row| {
                let value: String = row.get(2)?;
                let encrypted: Vec<u8> = row.get(3)?;
                let value = if value.is_empty() {
                    decrypt_v10(&encrypted).unwrap_or_default()
                } else {
                    value
                };
                Ok((row.get(0)?, row.get(1)?, value))
            })
            .unwrap();
        cookies.extend(rows.map(Result::unwrap));
    }
    cookies
}

/// Chromium's "v10" cookie encryption on Linux without a keyring: AES-128-CBC
/// with the key PBKDF2-HMAC-SHA1("peanuts", "saltysalt", 1 round) and an IV
/// of 16 spaces (newer versions put SHA-256 of the host before the value).
/// Decrypted with the `openssl` program.
fn decrypt_v10(encrypted: &[u8]) -> Option<String> {
    let body = encrypted.strip_prefix(b"v10")?;
    let mut key = [0u8; 16];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        std::num::NonZeroU32::new(1).unwrap(),
        b"saltysalt",
        b"peanuts",
        &mut key,
    );
    let hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex,
            "-iv",
            &"20".repeat(16),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl, to read the profile's cookies as an attacker would");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `GET /api/events` with `Authorization: Bearer token` and, if given, a
/// `Cookie` header: the status.
fn api_status(port: u16, token: &str, cookie: Option<&str>) -> u16 {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend(cookie.map(|cookie| ("Cookie", cookie)));
    http_with(port, "GET", "/api/events", &headers, "").0
}

/// Issue 24: the profile of a browser that opened the printed link and
/// closed holds no credential that opens the API. Chromium writes
/// sessionStorage and even session cookies to the profile, so the page keeps
/// its page token in memory (and `window.name`, for a reload), never in
/// storage; the binder session cookie it works with may be on disk, alone.
/// Every credential-looking string in the profile's files, and every cookie
/// decrypted as an attacker would, is tried against the API. The page
/// token's lifetime is the default 15 minutes, so nothing here depends on
/// it expiring.
#[test]
fn the_printed_link_leaves_no_working_token_in_the_browser_profile() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let _collector = collector_process(root, port, &[]);
    let token_file = root.join("home/.local/state/hooktrail/http-token");
    wait_until(
        "the collector's API, behind its token",
        Duration::from_secs(30),
        || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/api/health", None).0 == 401
                && token_file.is_file()
        },
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    emit(
        &root.join("run/collector.sock"),
        root,
        &fixture("tools_basic"),
    );
    let printed = collector_command(root, port, &["url"])
        .output()
        .expect("hooktrail-collector url");
    let link = String::from_utf8(printed.stdout).unwrap().trim().to_owned();
    let code = link
        .rsplit_once("#code=")
        .expect("a code in the link")
        .1
        .to_owned();
    assert!(!link.contains(&token), "the link does not carry the token");

    let profile = root.join("profile");
    let live = "return document.getElementById('conn').textContent === 'live' \
                && document.querySelectorAll('tr.event').length >= 5 && location.hash === '' \
                && !document.getElementById('welcome')";
    let (page_token, binder) = {
        let driver = Driver::start(&profile);
        driver.go(&link);
        driver.wait_for("the page to sign in and go live", live);
        // Nothing in the page's storage: the page token is in memory, and
        // in window.name for a reload.
        let storage = "return sessionStorage.length + localStorage.length";
        assert_eq!(driver.script(storage), json!(0));
        let page_token = driver
            .script("return window.name")
            .as_str()
            .and_then(|name| name.strip_prefix("hooktrail-page-token:"))
            .expect("the page token in window.name")
            .to_owned();
        // The binder: a session cookie (no expiry), out of the page's reach.
        let cookies = driver.call("GET", "/cookie", None);
        let binder = cookies
            .as_array()
            .unwrap()
            .iter()
            .find(|cookie| cookie["name"] == format!("hooktrail_binder_{port}"))
            .unwrap_or_else(|| panic!("the binder cookie: {cookies}"))
            .clone();
        assert!(binder.get("expiry").is_none(), "a session cookie: {binder}");
        assert_eq!(binder["httpOnly"], true, "{binder}");
        assert_eq!(binder["sameSite"], "Strict", "{binder}");
        assert_eq!(driver.script("return document.cookie"), json!(""));
        let binder = binder["value"].as_str().unwrap().to_owned();
        // A reload of the tab signs in again (the page token handed over in
        // window.name, the cookie sent by the browser), and stores nothing.
        driver.call("POST", "/refresh", Some(json!({})));
        driver.wait_for("the reloaded tab to go live again", live);
        assert_eq!(driver.script(storage), json!(0));
        (page_token, binder)
    };
    // The credentials the open browser held work together, not apart.
    let cookie = format!("hooktrail_binder_{port}={binder}");
    assert_eq!(api_status(port, &page_token, Some(&cookie)), 200);
    assert_eq!(api_status(port, &page_token, None), 401);
    // The driver is gone: Chromium has quit and removed its lock.
    wait_until("Chromium to exit", Duration::from_secs(30), || {
        std::fs::symlink_metadata(profile.join("SingletonLock")).is_err()
    });

    // Chromium writes some strings as UTF-16: dropping the NUL bytes makes
    // ASCII in either encoding searchable as ASCII.
    let files: Vec<(PathBuf, Vec<u8>)> = files_under(&profile)
        .into_iter()
        .map(|(path, bytes)| (path, bytes.into_iter().filter(|b| *b != 0).collect()))
        .collect();
    assert!(!files.is_empty(), "the profile has files");
    let holding = |needle: &str| -> Vec<String> {
        files
            .iter()
            .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .map(|(path, _)| path.display().to_string())
            .collect()
    };
    assert!(
        holding(&token).is_empty(),
        "the token is in {:?}",
        holding(&token)
    );
    // Chromium writes session cookies to its Cookies database too (it drops
    // them at its next start): the binder may be on disk, readable.
    let cookies = profile_cookies(&profile);
    let binder_on_disk = cookies
        .iter()
        .any(|(_, name, value)| name.starts_with("hooktrail_binder") && value.contains(&binder));
    // The code may be in the History database: it is used up.
    let origin = format!("http://127.0.0.1:{port}");
    let body = json!({ "code": code }).to_string();
    let (status, answer) = http_with(
        port,
        "POST",
        "/api/page-token",
        &[("Origin", &origin)],
        &body,
    );
    assert_eq!(status, 401, "the link's code after use: {answer}");

    // Every credential-looking string on disk, tried as a bearer alone and
    // with every cookie value and binder-looking string on disk.
    let mut candidates: Vec<String> = files
        .iter()
        .flat_map(|(_, bytes)| token_like(&String::from_utf8_lossy(bytes)))
        .collect();
    candidates.sort();
    candidates.dedup();
    let mut binders: Vec<String> = cookies
        .iter()
        .flat_map(|(_, _, value)| token_like(value))
        .chain(candidates.iter().filter(|c| c.starts_with("b1.")).cloned())
        .collect();
    binders.sort();
    binders.dedup();
    let stored_page_tokens = candidates.iter().filter(|c| c.starts_with("p2.")).count();
    eprintln!(
        "{} token-like strings in the closed browser's profile, {stored_page_tokens} page tokens, \
         {} cookie or binder values (the binder cookie on disk: {binder_on_disk}); the code in {:?}",
        candidates.len(),
        binders.len(),
        holding(&code)
    );
    assert!(
        holding(&page_token).is_empty(),
        "the page token is in {:?}",
        holding(&page_token)
    );
    let mut working = Vec::new();
    for candidate in &candidates {
        if api_status(port, candidate, None) == 200 {
            working.push(candidate.clone());
        }
        if !candidate.starts_with("p2.") {
            continue;
        }
        for binder in &binders {
            let cookie = format!("hooktrail_binder_{port}={binder}");
            if api_status(port, candidate, Some(&cookie)) == 200 {
                working.push(format!("{candidate} with {binder}"));
            }
        }
    }
    assert!(
        working.is_empty(),
        "working credentials on disk: {working:?}"
    );
    assert_eq!(
        api_status(port, &page_token, None),
        401,
        "the page token the tab held, without its cookie"
    );
    assert_eq!(
        api_status(port, &token, None),
        200,
        "the token itself still works, for the CLI"
    );
}

/// Issue 23: a page opened without a working token shows where the link is
/// printed and takes a pasted token.
#[test]
fn a_page_without_its_token_shows_where_the_link_is_and_takes_a_pasted_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let token = "5e".repeat(32);
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("home")).unwrap();
    let _collector = Process(
        Command::new(COLLECTOR)
            .args(["--db", &root.join("data/events.db").display().to_string()])
            .args([
                "--socket",
                &root.join("run/collector.sock").display().to_string(),
            ])
            .args(["--spool-dir", &root.join("spool").display().to_string()])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("HOME", root.join("home"))
            .env("HOOKTRAIL_TOKEN", &token)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector"),
    );
    wait_until("the collector's page", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/welcome.js", None).0 == 200
    });

    let driver = Driver::start(&root.join("profile"));
    driver.go(&format!("http://127.0.0.1:{port}/"));
    driver.wait_for(
        "the welcome panel",
        "const panel = document.getElementById('welcome'); return !!panel && panel.textContent.includes('hooktrail-collector url') && panel.textContent.includes('journalctl --user -u hooktrail-collector')",
    );
    // A wrong token: the page says it was refused.
    driver.type_into("#welcome-token", "deadbeef");
    driver.click("#welcome-form button");
    driver.wait_for(
        "the refused-token panel",
        "const title = document.getElementById('welcome-title'); return !!title && title.textContent.includes('refused')",
    );
    // The token itself: the live page (which trades it for a page token),
    // and nothing of it in the address bar.
    driver.type_into("#welcome-token", &token);
    driver.click("#welcome-form button");
    driver.wait_for(
        "the live page without the panel",
        "return document.getElementById('conn').textContent === 'live' && !document.getElementById('welcome') && !location.href.includes('token')",
    );
}

/// Remote approval in the page (issue 18): a waiting request appears live,
/// its command shown exactly (the bidi characters of issue 24's example as
/// visible escapes, with a warning), the pending count is in the header and
/// the tab title, and Approve hands a signed allow to the waiting hook.
#[test]
fn a_pending_request_appears_live_shown_exactly_and_approve_reaches_the_hook() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let socket = root.join("run/collector.sock");
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("home/.config/hooktrail")).unwrap();
    std::fs::write(
        root.join("home/.config/hooktrail/config.json"),
        r#"{"approvals": {"wait": "always"}}"#,
    )
    .unwrap();
    let _collector = Process(
        Command::new(COLLECTOR)
            .args(["--db", &root.join("data/events.db").display().to_string()])
            .args(["--socket", &socket.display().to_string()])
            .args(["--spool-dir", &root.join("spool").display().to_string()])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .arg("--no-token")
            .env_clear()
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("home/.config"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector"),
    );
    wait_until("the collector's API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/api/health", None).0 == 200
    });
    let driver = Driver::start(&root.join("profile"));
    driver.go(&format!("http://127.0.0.1:{port}/"));
    driver.wait_for(
        "the feed to go live",
        "return document.getElementById('conn').textContent === 'live'",
    );
    assert_eq!(
        driver.script("return document.getElementById('approvals').hidden"),
        json!(true)
    );

    // A hook waits: its request over the socket, the connection kept open.
    let command = "X=\u{202E}\u{202D} touch /tmp/x;\u{202C} \u{202D}echo ok # \u{202C}\u{202C}";
    let payload = json!({"session_id": "approve-session", "transcript_path": "/tmp/t.jsonl",
        "cwd": "/home/dev/project", "hook_event_name": "PermissionRequest", "tool_name": "Bash",
        "tool_input": {"command": command, "description": "make a file"}});
    let mut envelope = hooktrail_shared::envelope::Envelope::from_hook_stdin(
        payload.to_string().as_bytes(),
        "approve-in-browser".to_owned(),
        hooktrail_shared::time::now_millis(),
        "browser-test".into(),
    );
    envelope.wait_until = Some(hooktrail_shared::time::now_millis() + 120_000);
    let mut hook = std::os::unix::net::UnixStream::connect(&socket).expect("collector socket");
    hook.write_all(format!("{}\n", envelope.to_json()).as_bytes())
        .unwrap();
    hook.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut hook = std::io::BufReader::new(hook);
    let mut answer = String::new();
    hook.read_line(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");

    driver.wait_for(
        "the pending request, live",
        "return !!document.querySelector('#ap-pending .ap-request[data-event-id=\"approve-in-browser\"]') \
           && document.getElementById('ap-count').textContent === '1 waiting for you' \
           && document.title.includes('1 to approve')",
    );
    let shown = driver.script("return document.querySelector('#ap-pending .ap-exact').textContent");
    let shown = shown.as_str().unwrap();
    assert!(
        !shown.contains(['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}']),
        "a raw bidi character in the page: {shown:?}"
    );
    assert!(
        shown.contains("⟨U+202E⟩") && shown.contains("touch /tmp/x;"),
        "{shown:?}"
    );
    assert_eq!(
        driver.script("return !!document.querySelector('#ap-pending .ap-warning')"),
        json!(true)
    );
    assert_eq!(
        driver.script("return /s left$/.test(document.querySelector('.ap-remaining').textContent)"),
        json!(true)
    );

    driver.click("#ap-pending .ap-approve");
    let mut decision = String::new();
    hook.read_line(&mut decision).unwrap();
    let decision: Value = serde_json::from_str(&decision).expect("a decision line");
    assert_eq!(
        (&decision["verdict"], &decision["by"], &decision["event_id"]),
        (
            &json!("allow"),
            &json!("owner"),
            &json!("approve-in-browser")
        )
    );
    driver.wait_for(
        "the request to leave the pending list and enter the audit trail",
        "return !document.querySelector('#ap-pending .ap-request') \
           && document.querySelector('#ap-audit tr td.ap-verdict-allow') !== null \
           && !document.title.includes('to approve')",
    );
}
