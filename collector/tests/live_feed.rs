//! Issue 16's live-feed defects, each pinned by a test named after the bug:
//! the real collector, the real `import` process writing the same database,
//! and a WebSocket client on `/ws` (items 14 and 20).

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hooktrail_testkit::{wait_until, workspace_root};
use serde_json::Value;
use support::process::{copy_tree, envelope, http_port, import, send_lines, Collector};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

/// A collector whose database exists, with `count` events stored.
fn collector_with_events(dir: &Path, count: usize) -> Collector {
    std::fs::create_dir_all(dir).unwrap();
    let collector = Collector::start(dir, &["--no-token"]);
    // The collector has created its database before an import opens it.
    wait_until("the collector's database", Duration::from_secs(20), || {
        collector.log_text().contains("storing events in")
    });
    let lines: Vec<String> = (0..count).map(envelope).collect();
    send_lines(&collector.socket, &lines);
    collector.wait_rows(count as i64, Duration::from_secs(20));
    collector
}

fn open(port: u16, query: &str) -> Client {
    let (client, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{port}/ws?{query}")).expect("open /ws");
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
    }
    client
}

/// How long a test waits for a message.
const PATIENCE: Duration = Duration::from_secs(30);

/// The next JSON message, skipping pings (which the server sends every
/// 15 s, so the socket's read timeout alone would never end the wait).
fn next_message(client: &mut Client) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no message from /ws");
        match client.read().expect("read from /ws") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads messages until the `live` one; returns its cursor.
fn read_until_live(client: &mut Client) -> i64 {
    loop {
        let message = next_message(client);
        if message["type"] == "live" {
            return message["cursor"].as_i64().unwrap();
        }
    }
}

/// Reads event messages until `seen` ends with `last`, appending each
/// event's seq to `seen`.
fn read_until_seq(client: &mut Client, seen: &mut Vec<i64>, last: i64) {
    let deadline = Instant::now() + PATIENCE;
    while seen.last().is_none_or(|&seq| seq < last) {
        assert!(
            Instant::now() < deadline,
            "timed out at seq {:?}, waiting for {last}",
            seen.last()
        );
        let message = next_message(client);
        assert_eq!(message["type"], "events", "{message}");
        for event in message["events"].as_array().unwrap() {
            seen.push(event["seq"].as_i64().unwrap());
        }
    }
}

/// The stored seqs after `after`, in order.
fn seqs_after(collector: &Collector, after: i64) -> Vec<i64> {
    collector
        .rows(&format!(
            "SELECT seq FROM events WHERE seq > {after} ORDER BY seq"
        ))
        .into_iter()
        .map(|row| row[0].parse().unwrap())
        .collect()
}

/// A `projects` directory holding copies of the named transcript fixtures.
fn projects(root: &Path, scenarios: &[&str]) -> PathBuf {
    let project = root.join("projects").join("-home-dev-project");
    for scenario in scenarios {
        let from = workspace_root()
            .join("tests/fixtures/transcripts")
            .join(scenario);
        copy_tree(&from, &project);
    }
    root.join("projects")
}

#[test]
fn websocket_clients_see_imported_events_in_order_also_after_a_live_event() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector_with_events(&dir.path().join("collector"), 2);
    let port = http_port(&collector);
    let mut client = open(port, "after=2");
    assert_eq!(read_until_live(&mut client), 2);

    // An import while nothing else happens: its rows reach the client.
    import(
        &projects(&dir.path().join("first"), &["tools"]),
        &collector.db,
    );
    let imported = seqs_after(&collector, 2);
    assert!(imported.len() > 10, "{imported:?}");
    let mut seen = Vec::new();
    read_until_seq(&mut client, &mut seen, *imported.last().unwrap());
    assert_eq!(seen, imported, "every imported seq once, in order");

    // An import, then at once a live event after it: the live event does
    // not overtake the imported rows (its cursor would pass them).
    let cursor = *seen.last().unwrap();
    import(
        &projects(&dir.path().join("second"), &["cost", "subagent"]),
        &collector.db,
    );
    // Acknowledged, so committed, once this returns.
    send_lines(&collector.socket, &[envelope(100)]);
    let expected = seqs_after(&collector, cursor);
    let mut later = Vec::new();
    read_until_seq(&mut client, &mut later, *expected.last().unwrap());
    assert_eq!(
        later, expected,
        "imported and live seqs, each once, in order"
    );

    // A client reconnecting from its cursor goes on from there.
    send_lines(&collector.socket, &[envelope(101)]);
    let newest = *seqs_after(&collector, 0).last().unwrap();
    let mut again = open(port, &format!("after={}", later.last().unwrap()));
    let mut resumed = Vec::new();
    read_until_seq(&mut again, &mut resumed, newest);
    assert_eq!(resumed, [newest]);
}

#[test]
fn a_websocket_cursor_beyond_the_newest_seq_gets_a_reset_and_then_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector_with_events(dir.path(), 2);
    let port = http_port(&collector);
    // A page that knew a database with more rows (since replaced).
    let mut client = open(port, "after=1000");
    let first = next_message(&mut client);
    assert_eq!(first["type"], "reset", "{first}");
    assert_eq!(first["cursor"], 2, "{first}");
    assert_eq!(read_until_live(&mut client), 2);
    send_lines(&collector.socket, &[envelope(7)]);
    let mut seen = Vec::new();
    read_until_seq(&mut client, &mut seen, 3);
    assert_eq!(seen, [3], "the feed goes on from the newest seq");
}
