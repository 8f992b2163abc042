//! `/ws`: replay from a cursor then live, with no gap and no duplicate while
//! events keep arriving during the replay; filters; a slow client kept;
//! the Origin refusal; the client count.

mod support;

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hooktrail_collector::CommittedEvent;
use hooktrail_testkit::wait_until;
use serde_json::Value;
use support::in_process::{TestDb, TestServer};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

fn open(
    server: &TestServer,
    query: &str,
    origin: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    let mut request = format!("ws://127.0.0.1:{}/ws?{query}", server.port)
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    let (client, _) = tungstenite::connect(request)?;
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
    }
    Ok(client)
}

/// What the client saw: events (seq order as received), the cursor, and
/// whether the `live` marker came.
#[derive(Default)]
struct Seen {
    seqs: Vec<i64>,
    hooks: Vec<String>,
    cursor: i64,
    live_at: Option<usize>,
}

fn read_until(client: &mut Client, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out; saw {} events",
            seen.seqs.len()
        );
        match client.read().expect("read from /ws") {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                seen.cursor = message["cursor"].as_i64().unwrap();
                match message["type"].as_str().unwrap() {
                    "events" => {
                        for event in message["events"].as_array().unwrap() {
                            seen.seqs.push(event["seq"].as_i64().unwrap());
                            seen.hooks.push(event["hook"].as_str().unwrap().to_owned());
                        }
                    }
                    "live" => seen.live_at = Some(seen.seqs.len()),
                    other => panic!("unexpected message type {other}"),
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[test]
fn replay_then_live_has_no_gap_and_no_duplicate_while_events_arrive_during_the_replay() {
    let mut db = TestDb::new();
    for batch in 0..40 {
        db.insert_synthetic("m", &format!("s{}", batch % 4), 100);
    }
    let server = TestServer::start(&db, None);
    let hub = server.hub.clone();
    // A writer that commits and publishes 4,000 more events in small batches
    // while the client replays the first 4,000.
    let writer = std::thread::spawn(move || {
        for batch in 0..400 {
            let rows = db.insert_synthetic("m", &format!("s{}", batch % 4), 10);
            hub.publish(&rows);
        }
        db
    });
    let mut client = open(&server, "after=0", None).unwrap();
    let mut seen = Seen::default();
    // The live marker may come before or after the last event, depending on
    // whether the writer finished during the replay.
    read_until(&mut client, &mut seen, |seen| {
        seen.seqs.last() == Some(&8000) && seen.live_at.is_some()
    });
    let mut db = writer.join().unwrap();
    assert_eq!(
        seen.seqs,
        (1..=8000).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    assert!(seen.live_at.is_some(), "the live marker came");
    assert_eq!(seen.cursor, 8000);

    // A reconnect from the cursor replays only what came after it.
    let rows = publish_more(&server, &mut db, 5);
    let mut again = open(&server, "after=8000", None).unwrap();
    let mut resumed = Seen::default();
    read_until(&mut again, &mut resumed, |seen| seen.live_at.is_some());
    assert_eq!(resumed.seqs, rows);
}

fn publish_more(server: &TestServer, db: &mut TestDb, count: usize) -> Vec<i64> {
    let rows = db.insert_synthetic("m", "later", count);
    server.hub.publish(&rows);
    rows.iter().map(|row| row.seq).collect()
}

#[test]
fn filters_apply_to_the_replay_and_to_live_events() {
    let mut db = TestDb::new();
    db.insert_payloads("alpha", &hooktrail_testkit::fixture("tools_basic"));
    let server = TestServer::start(&db, None);
    let mut client = open(&server, "after=0&hook=PreToolUse&machine=alpha", None).unwrap();
    let mut seen = Seen::default();
    read_until(&mut client, &mut seen, |seen| seen.live_at.is_some());
    assert!(!seen.seqs.is_empty());
    assert!(seen.hooks.iter().all(|hook| hook == "PreToolUse"));
    let before = seen.seqs.len();
    let rows = db.insert_payloads("beta", &hooktrail_testkit::fixture("tools_basic"));
    server.hub.publish(&rows);
    let rows = db.insert_payloads("alpha", &hooktrail_testkit::fixture("tools_basic"));
    server.hub.publish(&rows);
    let wanted: Vec<i64> = rows
        .iter()
        .filter(|row| row.hook == "PreToolUse")
        .map(|row| row.seq)
        .collect();
    read_until(&mut client, &mut seen, |seen| {
        seen.seqs.len() >= before + wanted.len()
    });
    assert_eq!(seen.seqs[before..], wanted[..]);
    assert!(seen.hooks.iter().all(|hook| hook == "PreToolUse"));
}

fn big_event(seq: i64) -> Arc<CommittedEvent> {
    Arc::new(CommittedEvent {
        seq,
        id: format!("id-{seq}"),
        ts: seq,
        received_at: seq,
        machine: "m".into(),
        session_id: Some("s".into()),
        agent_id: None,
        hook: "Notification".into(),
        tool: None,
        tool_use_id: None,
        cwd: None,
        source: "socket",
        payload: format!("{{\"message\":\"{}\"}}", "x".repeat(4096)),
        prompt_id: None,
        permission_mode: None,
        state: None,
        config_error: false,
    })
}

/// The next text message, or `None` when none came within the read timeout
/// (or another frame came); panics if the connection was closed.
fn read_text_unless_closed(client: &mut Client) -> Option<String> {
    match client.read() {
        Ok(Message::Text(text)) => Some(text.to_string()),
        Ok(Message::Close(frame)) => panic!("the slow client was closed: {frame:?}"),
        Ok(_) => None,
        Err(tungstenite::Error::Io(error))
            if error.kind() == std::io::ErrorKind::WouldBlock
                || error.kind() == std::io::ErrorKind::TimedOut =>
        {
            None
        }
        Err(error) => panic!("connection ended: {error}"),
    }
}

#[test]
fn a_slow_client_overflows_without_slowing_publish_and_is_not_closed() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let mut slow = open(&server, "", None).unwrap();
    let mut seen = Seen::default();
    read_until(&mut slow, &mut seen, |seen| seen.live_at.is_some());
    wait_until("the client to subscribe", Duration::from_secs(10), || {
        server.hub.subscriber_count() == 1
    });
    // The client reads nothing from here on; publish until its queue
    // overflows.
    let mut slowest_publish = Duration::ZERO;
    let mut seq = 0;
    while server.hub.dropped_slow() == 0 {
        seq += 1;
        assert!(seq < 200_000, "the slow client's queue never overflowed");
        let started = Instant::now();
        server.hub.publish(&[big_event(seq)]);
        slowest_publish = slowest_publish.max(started.elapsed());
    }
    assert!(
        slowest_publish < Duration::from_millis(200),
        "publish waited {slowest_publish:?}"
    );
    // Now read: the client's thread reads on from the database (these
    // events were published by hand, not stored) and subscribes again; the
    // connection stays open and the next event reaches it.
    let deadline = Instant::now() + Duration::from_secs(60);
    if let MaybeTlsStream::Plain(stream) = slow.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
    }
    while server.hub.subscriber_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the client never subscribed again"
        );
        read_text_unless_closed(&mut slow);
    }
    let next = seq + 1;
    server.hub.publish(&[big_event(next)]);
    let marker = format!("\"seq\":{next},");
    while !read_text_unless_closed(&mut slow).is_some_and(|text| text.contains(&marker)) {
        assert!(Instant::now() < deadline, "the next event never came");
    }
    assert_eq!(
        server
            .stats
            .websocket_clients
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_websocket_from_another_origin_is_refused() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    match open(&server, "after=0", Some("http://evil.example")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected a 403, got {other}"),
        Ok(_) => panic!("a cross-origin WebSocket was accepted"),
    }
    let own = format!("http://127.0.0.1:{}", server.port);
    let mut client =
        open(&server, "after=0", Some(&own)).expect("the page's own origin is accepted");
    let mut seen = Seen::default();
    read_until(&mut client, &mut seen, |seen| seen.live_at.is_some());
    assert_eq!(
        server
            .stats
            .websocket_clients
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    client.close(None).unwrap();
    wait_until(
        "the server to count the client gone",
        Duration::from_secs(10),
        || {
            server
                .stats
                .websocket_clients
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
        },
    );
}

#[test]
fn bad_websocket_parameters_get_a_400() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    match open(&server, "after=yesterday", None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected a 400, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_large_commit_reaches_clients_with_and_without_filters_whole_and_in_order() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let mut plain = [
        open(&server, "", None).unwrap(),
        open(&server, "", None).unwrap(),
    ];
    let mut filtered = open(&server, "hook=Stop", None).unwrap();
    let mut seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();
    for (client, seen) in plain.iter_mut().chain([&mut filtered]).zip(&mut seen) {
        read_until(client, seen, |seen| seen.live_at.is_some());
    }
    wait_until("three subscribers", Duration::from_secs(10), || {
        server.hub.subscriber_count() == 3
    });
    // One commit of 1,200 events (the hub cuts it in chunks of 500, whose
    // frames the unfiltered clients share), then a small one.
    let event = |seq: i64| {
        let mut event = (*big_event(seq)).clone();
        event.payload = format!("{{\"n\":{seq}}}");
        event.hook = if seq % 100 == 0 { "Stop" } else { "PreToolUse" }.into();
        Arc::new(event)
    };
    server
        .hub
        .publish(&(1..=1200).map(event).collect::<Vec<_>>());
    server
        .hub
        .publish(&(1201..=1210).map(event).collect::<Vec<_>>());
    for (client, seen) in plain.iter_mut().zip(&mut seen) {
        read_until(client, seen, |seen| seen.cursor == 1210);
        assert_eq!(seen.seqs, (1..=1210).collect::<Vec<_>>());
    }
    read_until(&mut filtered, &mut seen[2], |seen| seen.seqs.len() == 12);
    assert_eq!(seen[2].seqs, (1..=12).map(|n| n * 100).collect::<Vec<_>>());
    assert!(seen[2].hooks.iter().all(|hook| hook == "Stop"));
}
