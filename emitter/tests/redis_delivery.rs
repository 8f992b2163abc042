//! Hook mode against Redis in every state DESIGN §2 and issue 2 name: stream
//! and pub/sub up, refused, silent (accepts and never answers), never accepts,
//! the breaker open and expired, AUTH with an ACL user, and spool forwarding.
//! Every run also proves exit 0 and an empty stdout.

mod common;

use std::time::Duration;

use common::{
    envelope, fixture_line, ids, stream_envelopes, Answer, FakeCollector, Stdin, Subscriber, World,
};
use hooktrail_testkit::{
    wait_until, RedisServer, Repeat, ScriptedListener, Silence, SilentListener,
};

const KEY: &str = "hooktrail:events";

fn world_with_redis(url: &str) -> World {
    let mut world = World::new();
    world.set("HOOKTRAIL_REDIS_URL", url);
    world
}

#[test]
fn stream_up_stores_the_envelope_with_the_fixture_payload() {
    let server = RedisServer::start();
    let world = world_with_redis(&server.url());
    let payload = fixture_line("PreToolUse");
    let run = world.hook_with_id("stream-1", &payload);
    run.assert_silent_success();
    let stored = stream_envelopes(&server, KEY);
    assert_eq!(ids(&stored), ["stream-1"]);
    let event = &stored[0];
    assert_eq!(event["v"], 1);
    assert_eq!(event["hook"], "PreToolUse");
    assert_eq!(
        event["payload"],
        envelope(&payload),
        "payload must be the hook JSON untouched"
    );
    assert_eq!(event["session_id"], envelope(&payload)["session_id"]);
    assert!(event["tool"].is_string());
    assert!(
        world.spool_lines().is_empty(),
        "nothing spooled when Redis took it"
    );
    assert!(!world.state_dir().join("redis-breaker").exists());
}

#[test]
fn stream_honours_key_and_maxlen() {
    let server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world
        .set("HOOKTRAIL_REDIS_KEY", "custom:key")
        .set("HOOKTRAIL_REDIS_MAXLEN", "5");
    for index in 0..3 {
        world
            .hook_with_id(&format!("k{index}"), &fixture_line("Stop"))
            .assert_silent_success();
    }
    assert_eq!(
        ids(&stream_envelopes(&server, "custom:key")),
        ["k0", "k1", "k2"]
    );
}

#[test]
fn pubsub_up_reaches_a_subscriber() {
    let server = RedisServer::start();
    let mut subscriber = Subscriber::start(server.port, KEY);
    let mut world = world_with_redis(&server.url());
    world.set("HOOKTRAIL_REDIS_TRANSPORT", "pubsub");
    let payload = fixture_line("UserPromptSubmit");
    world
        .hook_with_id("pub-1", &payload)
        .assert_silent_success();
    let message = envelope(&subscriber.next_message());
    assert_eq!(message["id"], "pub-1");
    assert_eq!(message["payload"], envelope(&payload));
    assert!(world.spool_lines().is_empty());
}

#[test]
fn pubsub_without_subscribers_falls_through_to_the_socket_then_the_spool() {
    let server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world.set("HOOKTRAIL_REDIS_TRANSPORT", "pubsub");
    // No collector: the spool.
    world
        .hook_with_id("nobody-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(
        ids(&world
            .spool_lines()
            .iter()
            .map(|l| envelope(l))
            .collect::<Vec<_>>()),
        ["nobody-1"]
    );
    // 0 receivers is not a Redis failure: no breaker.
    assert!(!world.state_dir().join("redis-breaker").exists());
    // With a collector: the socket.
    let collector = FakeCollector::start(&world.socket(), Answer::Ok);
    world
        .hook_with_id("nobody-2", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(envelope(&collector.next_line())["id"], "nobody-2");
    assert_eq!(world.spool_lines().len(), 1);
}

#[test]
fn redis_refused_goes_to_the_socket_and_opens_the_breaker() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let world = world_with_redis(&url);
    let collector = FakeCollector::start(&world.socket(), Answer::Ok);
    let run = world.hook_with_id("refused-1", &fixture_line("PostToolUse"));
    run.assert_silent_success();
    assert!(
        run.elapsed < Duration::from_millis(900),
        "a refused connect is immediate: {:?}",
        run.elapsed
    );
    assert_eq!(envelope(&collector.next_line())["id"], "refused-1");
    assert!(
        world.state_dir().join("redis-breaker").exists(),
        "a refused Redis opens the breaker"
    );
    assert!(world.spool_lines().is_empty());
}

fn assert_bounded_then_spooled(silence: Silence) {
    let listener = SilentListener::start(0, silence);
    let world = world_with_redis(&format!("redis://127.0.0.1:{}", listener.port));
    let run = world.hook_with_id("silent-1", &fixture_line("PreToolUse"));
    run.assert_silent_success();
    assert!(
        run.elapsed >= Duration::from_millis(900),
        "it should have waited for Redis: {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed <= Duration::from_millis(1400),
        "one budget for everything: {:?}",
        run.elapsed
    );
    assert_eq!(
        ids(&world
            .spool_lines()
            .iter()
            .map(|l| envelope(l))
            .collect::<Vec<_>>()),
        ["silent-1"]
    );
    let breaker = std::fs::read_to_string(world.state_dir().join("redis-breaker")).unwrap();
    assert!(breaker.contains("Timeout"), "{breaker}");
    // The next hook skips Redis while the breaker is open.
    let second = world.hook_with_id("silent-2", &fixture_line("PostToolUse"));
    second.assert_silent_success();
    assert!(
        second.elapsed < Duration::from_millis(400),
        "breaker open: no wait, got {:?}",
        second.elapsed
    );
    assert_eq!(world.spool_lines().len(), 2);
}

#[test]
fn redis_that_accepts_and_never_answers_costs_one_budget_then_the_breaker_skips_it() {
    assert_bounded_then_spooled(Silence::AcceptAndNeverAnswer);
}

#[test]
fn redis_that_never_accepts_costs_one_budget_then_the_breaker_skips_it() {
    assert_bounded_then_spooled(Silence::NeverAccept);
}

#[test]
fn breaker_open_skips_a_healthy_redis_and_expired_tries_it_again() {
    let mut server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world.set("HOOKTRAIL_BREAKER_SECONDS", "2");
    server.stop();
    world
        .hook_with_id("b1", &fixture_line("Stop"))
        .assert_silent_success();
    let breaker_file = world.state_dir().join("redis-breaker");
    let expiry: i64 = std::fs::read_to_string(&breaker_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    server.restart();
    // Open: Redis is up again, but the hook does not even try it.
    world
        .hook_with_id("b2", &fixture_line("Stop"))
        .assert_silent_success();
    assert!(
        now_millis() < expiry,
        "the test ran too slowly to see the breaker open"
    );
    assert!(
        stream_envelopes(&server, KEY).is_empty(),
        "an open breaker skips Redis"
    );
    assert_eq!(world.spool_lines().len(), 2);
    // Expired: the next hook tries Redis, succeeds, closes the breaker and
    // forwards the two spooled events.
    wait_until("the breaker to expire", Duration::from_secs(5), || {
        now_millis() > expiry
    });
    world
        .hook_with_id("b3", &fixture_line("Stop"))
        .assert_silent_success();
    assert!(!breaker_file.exists(), "a success removes the breaker file");
    let mut stored = ids(&stream_envelopes(&server, KEY));
    stored.sort();
    assert_eq!(stored, ["b1", "b2", "b3"]);
    assert!(world.spool_lines().is_empty());
}

fn now_millis() -> i64 {
    hooktrail_shared::time::now_millis()
}

#[test]
fn spool_forwarding_catches_up_after_redis_returns() {
    let mut server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    // Expire at once, so every hook tries Redis.
    world.set("HOOKTRAIL_BREAKER_SECONDS", "0");
    server.stop();
    let sent: Vec<String> = (0..20).map(|index| format!("offline-{index}")).collect();
    for id in &sent {
        world
            .hook_with_id(id, &fixture_line("PostToolUse"))
            .assert_silent_success();
    }
    assert_eq!(world.spool_lines().len(), 20);
    assert!(world.spool_dir().join(".pending").exists());
    server.restart();
    world
        .hook_with_id("online-1", &fixture_line("Stop"))
        .assert_silent_success();
    let stored = ids(&stream_envelopes(&server, KEY));
    assert_eq!(stored[0], "online-1", "the hook's own event goes first");
    let mut forwarded: Vec<String> = stored[1..].to_vec();
    forwarded.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(forwarded, expected);
    assert!(
        world.spool_lines().is_empty(),
        "forwarded lines leave the spool"
    );
    assert!(
        !world.spool_dir().join(".pending").exists(),
        "the marker is gone once the spool is empty"
    );
}

#[test]
fn pubsub_forwarding_stops_at_zero_receivers_and_keeps_the_rest() {
    let mut server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world
        .set("HOOKTRAIL_BREAKER_SECONDS", "0")
        .set("HOOKTRAIL_REDIS_TRANSPORT", "pubsub");
    server.stop();
    for index in 0..3 {
        world
            .hook_with_id(&format!("p{index}"), &fixture_line("Stop"))
            .assert_silent_success();
    }
    server.restart();
    let mut subscriber = Subscriber::start(server.port, KEY);
    world
        .hook_with_id("p-live", &fixture_line("Stop"))
        .assert_silent_success();
    let received: Vec<String> = (0..4)
        .map(|_| {
            envelope(&subscriber.next_message())["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(received[0], "p-live");
    assert_eq!(received.len(), 4);
    assert!(world.spool_lines().is_empty());
}

#[test]
fn auth_with_an_acl_user_and_password() {
    let server = RedisServer::start_with(&[
        "--requirepass",
        "admin-pw",
        "--user",
        "alice",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
    ]);
    let mut world = world_with_redis(&format!(
        "redis://alice:s3cret-pw@127.0.0.1:{}",
        server.port
    ));
    world
        .hook_with_id("auth-1", &fixture_line("SessionStart"))
        .assert_silent_success();
    assert_eq!(ids(&stream_envelopes(&server, KEY)), ["auth-1"]);
    // A wrong password: spooled, the breaker opens, and the password never
    // appears in the diagnostics.
    world
        .set(
            "HOOKTRAIL_REDIS_URL",
            format!("redis://alice:wrong-pw@127.0.0.1:{}", server.port),
        )
        .set("HOOKTRAIL_DEBUG", "1");
    let run = world.hook_with_id("auth-2", &fixture_line("SessionStart"));
    run.assert_silent_success();
    assert!(run.stderr.contains("AUTH refused"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("wrong-pw"),
        "password leaked: {}",
        run.stderr
    );
    assert_eq!(world.spool_lines().len(), 1);
    assert_eq!(ids(&stream_envelopes(&server, KEY)), ["auth-1"]);
}

#[test]
fn password_only_auth_and_database_selection() {
    let server = RedisServer::start_with(&["--requirepass", "only-pw"]);
    let world = world_with_redis(&format!("redis://:only-pw@127.0.0.1:{}/2", server.port));
    world
        .hook_with_id("db2-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(server.command(&["SELECT", "2"]), "OK");
    // The testkit's helper opens a fresh connection per command, so check the
    // key's absence in db 0 and use the stream length through a Lua call.
    assert_eq!(
        server.command(&["EXISTS", KEY]),
        "0",
        "db 0 must not hold the event"
    );
    assert_eq!(
        server.command(&[
            "EVAL",
            "redis.call('SELECT', 2) return redis.call('XLEN', KEYS[1])",
            "1",
            KEY
        ]),
        "1"
    );
}

#[test]
fn the_common_redis_path_touches_no_spool_and_no_state_file() {
    // A hook that delivers to Redis creates no spool directory and no breaker
    // file: the common path touches neither.
    let server = RedisServer::start();
    let world = world_with_redis(&server.url());
    world
        .hook(Stdin::Bytes(fixture_line("PostToolUse").into_bytes()))
        .assert_silent_success();
    assert!(!world.spool_dir().exists());
    assert!(!world.state_dir().exists());
    assert_eq!(stream_envelopes(&server, KEY).len(), 1);
}

/// Issue 13, item 2: a reply nested 400,000 deep overflowed the stack of
/// the recursive reply parser (exit 134, the event lost, no breaker, so every
/// later hook crashed too). Huge bulk lengths and an unending line were
/// buffered until the deadline. Each must now fail the attempt at once, open
/// the breaker and leave the event to the spool.
#[test]
fn a_hostile_redis_reply_opens_the_breaker_instead_of_crashing_the_hook() {
    let cases: [(&str, Vec<u8>, Repeat); 4] = [
        (
            "nested 400,000 deep",
            b"*1\r\n".repeat(400_000),
            Repeat::Once,
        ),
        (
            "a bulk string of a terabyte",
            b"$1000000000000\r\n".to_vec(),
            Repeat::Once,
        ),
        (
            "a bulk length that overflows",
            b"$9223372036854775807\r\n".to_vec(),
            Repeat::Once,
        ),
        (
            "a line that never ends",
            b"+AAAAAAAAAAAAAAAA".repeat(4096),
            Repeat::Forever,
        ),
    ];
    for (index, (what, reply, repeat)) in cases.into_iter().enumerate() {
        let hostile = ScriptedListener::start(reply, repeat);
        let mut world = world_with_redis(&hostile.url());
        world.set("HOOKTRAIL_DEBUG", "1");
        let id = format!("hostile-{index}");
        let run = world.hook_with_id(&id, &fixture_line("PreToolUse"));
        run.assert_silent_success();
        assert!(
            run.elapsed < Duration::from_millis(900),
            "{what}: refused at once, not at the deadline: {:?}",
            run.elapsed
        );
        assert!(!run.stderr.contains("panic"), "{what}: {}", run.stderr);
        let spooled: Vec<_> = world.spool_lines().iter().map(|l| envelope(l)).collect();
        assert_eq!(ids(&spooled), [id.as_str()], "{what}: the event is spooled");
        let breaker = std::fs::read_to_string(world.state_dir().join("redis-breaker"))
            .unwrap_or_else(|error| panic!("{what}: no breaker file: {error}"));
        assert!(breaker.contains("malformed reply"), "{what}: {breaker}");
    }
}

/// Runs a hook, but gives up (kills it and fails) if it is not done within
/// `limit`, so a hook that hangs fails the test instead of hanging it.
fn hook_within(world: &World, id: &str, payload: &str, limit: Duration) -> Duration {
    use std::io::Write;
    let started = std::time::Instant::now();
    let mut command = world.command(&[]);
    command
        .env("HOOKTRAIL_TEST_EVENT_ID", id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let mut status = None;
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the hook to exit", limit, || {
            status = child.try_wait().unwrap();
            status.is_some()
        })
    }));
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the hook was still running after {limit:?}");
    }
    assert_eq!(status.unwrap().code(), Some(0));
    started.elapsed()
}

/// Issue 13, item 1: forwarding claimed spool files with a blocking
/// `flock`, and the collector's drainer holds its claim's lock until its
/// commit, so a hook waited as long as the commit (5.8 s seen). A held lock
/// must be passed by, and the marker kept so the file is forwarded later.
#[test]
fn a_hook_never_waits_for_a_spool_lock_the_drainer_holds_until_its_commit() {
    use std::os::unix::io::AsRawFd;
    let server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world.set("HOOKTRAIL_BREAKER_SECONDS", "0");
    let spooled = hooktrail_shared::spool::append(
        &world.spool_dir(),
        &format!(
            r#"{{"v":1,"id":"held-1","ts":1,"machine":"m","hook":"Stop","payload":{}}}"#,
            fixture_line("Stop")
        ),
    )
    .unwrap();
    // The drainer's claim: the file is locked and stays locked.
    let holder = std::fs::File::open(&spooled).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let took = hook_within(
        &world,
        "live-1",
        &fixture_line("Stop"),
        Duration::from_secs(3),
    );
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(ids(&stream_envelopes(&server, KEY)), ["live-1"]);
    assert!(spooled.exists(), "the held file is left alone");
    assert!(
        world.spool_dir().join(".pending").exists(),
        "the marker stays while a held file may hold lines"
    );
    // Once the lock is released, the next hook forwards the line.
    drop(holder);
    hook_within(
        &world,
        "live-2",
        &fixture_line("Stop"),
        Duration::from_secs(3),
    );
    let mut stored = ids(&stream_envelopes(&server, KEY));
    stored.sort();
    assert_eq!(stored, ["held-1", "live-1", "live-2"]);
    assert!(world.spool_lines().is_empty());
}

fn spooled_envelope(id: &str, padding: usize) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","ts":1,"machine":"m","hook":"Stop","payload":{{"pad":"{}"}}}}"#,
        "p".repeat(padding)
    )
}

/// Issue 13, item 6: one large spooled line blocked forwarding for good and
/// slowed every hook to 0.4–0.6 s: each hook read the whole file, failed to
/// send it within the 150 ms budget, and put it all back, none of which the
/// budget covered. Now forwarding is bounded in bytes and time, resumes
/// where the last hook stopped, sends a large line under the limit, and
/// passes a line over the limit by, setting its file aside for the
/// collector instead of sending it.
#[test]
fn one_large_spooled_line_no_longer_blocks_forwarding_for_good() {
    let server = RedisServer::start();
    let world = world_with_redis(&server.url());
    let oversized = spooled_envelope("oversized-1", 64 * 1024 * 1024);
    let lines = [
        spooled_envelope("small-1", 100),
        spooled_envelope("large-1", 900 * 1024),
        oversized,
        spooled_envelope("small-2", 100),
        spooled_envelope("small-3", 100),
    ];
    hooktrail_shared::spool::append_lines(&world.spool_dir(), lines.iter().map(String::as_str))
        .unwrap();
    drop(lines);
    let expected = ["large-1", "small-1", "small-2", "small-3"];
    let mut hooks = 0;
    loop {
        hooks += 1;
        let run = world.hook_with_id(&format!("live-{hooks}"), &fixture_line("Stop"));
        run.assert_silent_success();
        assert!(
            run.elapsed < Duration::from_millis(1000),
            "hook {hooks} took {:?}",
            run.elapsed
        );
        let stored = ids(&stream_envelopes(&server, KEY));
        assert!(
            !stored.iter().any(|id| id == "oversized-1"),
            "a line over the limit never goes to Redis"
        );
        if expected.iter().all(|id| stored.iter().any(|s| s == id)) {
            break;
        }
        assert!(hooks < 10, "forwarding made no progress: {stored:?}");
    }
    // Only the file set aside for the collector is left, holding every line
    // of the file (the collector stores them once by id).
    let names: Vec<String> = std::fs::read_dir(world.spool_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spool-"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".oversized.jsonl"), "{names:?}");
    let set_aside = std::fs::read(world.spool_dir().join(&names[0])).unwrap();
    assert!(set_aside
        .windows(b"oversized-1".len())
        .any(|window| window == b"oversized-1"));
    // Later hooks leave it alone and cost nothing extra.
    let run = world.hook_with_id("live-last", &fixture_line("Stop"));
    run.assert_silent_success();
    assert!(!world.spool_dir().join(".pending").exists());
}

/// Issue 13, item 14: `HOOKTRAIL_BREAKER_SECONDS=1e300` made
/// `Duration::from_secs_f64` panic when Redis failed, so the breaker never
/// opened (the panic hook still spooled the event). Huge values are clamped
/// to a day; the breaker opens.
#[test]
fn a_huge_breaker_seconds_value_is_clamped_not_a_panic() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    for (index, seconds) in ["1e300", "1e19", "inf"].into_iter().enumerate() {
        let mut world = world_with_redis(&url);
        world
            .set("HOOKTRAIL_BREAKER_SECONDS", seconds)
            .set("HOOKTRAIL_DEBUG", "1");
        let run = world.hook_with_id(&format!("huge-{index}"), &fixture_line("Stop"));
        run.assert_silent_success();
        assert!(!run.stderr.contains("panic"), "{seconds}: {}", run.stderr);
        let breaker = std::fs::read_to_string(world.state_dir().join("redis-breaker"))
            .unwrap_or_else(|error| panic!("{seconds}: the breaker did not open: {error}"));
        let expiry: i64 = breaker.lines().next().unwrap().parse().unwrap();
        let day = 24 * 3600 * 1000;
        assert!(
            expiry > now_millis() && expiry <= now_millis() + day,
            "{seconds}: expiry {expiry}"
        );
        assert_eq!(world.spool_lines().len(), 1);
    }
}

/// Issue 13, item 11: `maxlen` was taken as any unsigned number, but Redis
/// reads it as a signed one and refused every `XADD` above `i64::MAX`, so
/// every event missed Redis and opened the breaker. It is now clamped (and
/// raised to at least 1,000, since Redis trims unread entries too).
#[test]
fn a_maxlen_redis_cannot_read_is_clamped_instead_of_failing_every_event() {
    let server = RedisServer::start();
    let mut world = world_with_redis(&server.url());
    world.set("HOOKTRAIL_REDIS_MAXLEN", "18446744073709551615");
    world
        .hook_with_id("maxlen-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(ids(&stream_envelopes(&server, KEY)), ["maxlen-1"]);
    assert!(!world.state_dir().join("redis-breaker").exists());
}

/// Issue 13, suspected: `getaddrinfo` in the static binary. `localhost` needs
/// no resolver; any other name of 127.0.0.1 in /etc/hosts goes through the
/// static glibc's resolver, which reads /etc/hosts and DNS itself (other NSS
/// sources, such as mDNS, are not available to a static binary).
#[test]
fn redis_host_names_resolve_in_the_static_binary() {
    let server = RedisServer::start();
    let mut hosts = vec!["localhost".to_owned(), "LOCALHOST".to_owned()];
    // A loopback alias from /etc/hosts, when the machine has one ("vm" here).
    let table = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts.extend(
        table
            .lines()
            .filter_map(|line| line.split('#').next())
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.first() == Some(&"127.0.0.1"))
            .flat_map(|fields| {
                fields[1..]
                    .iter()
                    .map(|name| name.to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|name| !name.eq_ignore_ascii_case("localhost"))
            .take(1),
    );
    for (index, host) in hosts.iter().enumerate() {
        let mut world = world_with_redis(&format!("redis://{host}:{}", server.port));
        world.set("HOOKTRAIL_DEBUG", "1");
        let id = format!("named-{index}");
        let run = world.hook_with_id(&id, &fixture_line("Stop"));
        run.assert_silent_success();
        assert!(
            ids(&stream_envelopes(&server, KEY)).contains(&id),
            "{host}: {}",
            run.stderr
        );
    }
}
