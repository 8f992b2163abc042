//! Every route of DESIGN §7's JSON API, each filter, paging by cursor, and
//! the 400s, against a real SQLite file with the collector's schema and the
//! real fixtures.

mod support;

use hooktrail_testkit::fixture;
use serde_json::Value;
use support::in_process::{encode, TestDb, TestServer};

fn seqs(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

fn loaded() -> (TestDb, TestServer) {
    let mut db = TestDb::new();
    db.insert_payloads("alpha", &fixture("tools_basic"));
    db.insert_payloads("beta", &fixture("subagent"));
    db.insert_payloads("alpha", &fixture("failures"));
    let server = TestServer::start(&db, None);
    (db, server)
}

#[test]
fn events_page_by_cursor_in_both_directions() {
    let (_db, server) = loaded();
    let total =
        fixture("tools_basic").len() + fixture("subagent").len() + fixture("failures").len();
    let first = server.json("/api/events?after=&limit=10", 200);
    assert_eq!(seqs(&first), (1..=10).collect::<Vec<_>>());
    assert_eq!(first["next"], 10);
    assert_eq!(first["more"], true);
    assert_eq!(first["last_seq"], total as i64);
    let mut all = seqs(&first);
    let mut next = first["next"].as_i64().unwrap();
    loop {
        let page = server.json(&format!("/api/events?after={next}&limit=10"), 200);
        all.extend(seqs(&page));
        next = page["next"].as_i64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(all, (1..=total as i64).collect::<Vec<_>>());
    assert_eq!(next, total as i64);
    // Nothing new: the same cursor comes back.
    let empty = server.json(&format!("/api/events?after={next}"), 200);
    assert_eq!(seqs(&empty), Vec::<i64>::new());
    assert_eq!(empty["next"], total as i64);

    let newest = server.json("/api/events?order=desc&limit=5", 200);
    let expected: Vec<i64> = (total as i64 - 4..=total as i64).rev().collect();
    assert_eq!(seqs(&newest), expected);
    let older = server.json(
        &format!("/api/events?order=desc&limit=5&before={}", newest["next"]),
        200,
    );
    assert_eq!(seqs(&older)[0], total as i64 - 5);
    let window = server.json("/api/events?after=3&before=7", 200);
    assert_eq!(seqs(&window), vec![4, 5, 6]);
}

#[test]
fn event_objects_carry_every_column_and_the_payload_as_json() {
    let (_db, server) = loaded();
    let page = server.json("/api/events?limit=1", 200);
    let event = &page["events"][0];
    for key in [
        "seq",
        "id",
        "ts",
        "received_at",
        "machine",
        "session_id",
        "agent_id",
        "hook",
        "tool",
        "tool_use_id",
        "cwd",
        "source",
        "payload",
    ] {
        assert!(event.get(key).is_some(), "missing {key}");
    }
    assert_eq!(event["payload"]["hook_event_name"], "SessionStart");
    assert_eq!(event["source"], "socket");
}

#[test]
fn each_filter_selects_and_filters_combine() {
    let (_db, server) = loaded();
    let subagent_session = serde_json::from_str::<Value>(&fixture("subagent")[0]).unwrap()
        ["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let check = |query: &str, test: &dyn Fn(&Value) -> bool, expect_some: bool| {
        let page = server.json(&format!("/api/events?limit=1000&{query}"), 200);
        let events = page["events"].as_array().unwrap();
        assert_eq!(!events.is_empty(), expect_some, "{query}");
        assert!(events.iter().all(test), "{query}");
    };
    check("machine=beta", &|e| e["machine"] == "beta", true);
    check(
        &format!("session={subagent_session}"),
        &|e| e["session_id"] == subagent_session.as_str(),
        true,
    );
    check(
        "agent=aedc35a865b2629db",
        &|e| e["agent_id"] == "aedc35a865b2629db",
        true,
    );
    check("agent=main", &|e| e["agent_id"].is_null(), true);
    check(
        "hook=PostToolUseFailure",
        &|e| e["hook"] == "PostToolUseFailure",
        true,
    );
    check("tool=Bash", &|e| e["tool"] == "Bash", true);
    check(
        &format!("q={}", encode("<img src=x")),
        &|e| e["payload"].to_string().contains("<img src=x"),
        true,
    );
    check(
        "machine=alpha&hook=PreToolUse&tool=Write",
        &|e| e["machine"] == "alpha" && e["hook"] == "PreToolUse" && e["tool"] == "Write",
        true,
    );
    check("machine=beta&tool=Write&q=onerror", &|_| true, false);
    check("machine=nowhere", &|_| true, false);
}

#[test]
fn bad_parameters_get_a_400_with_a_json_error_naming_them() {
    let (_db, server) = loaded();
    for (path, parameter) in [
        ("/api/events?limit=0", "limit"),
        ("/api/events?limit=many", "limit"),
        ("/api/events?after=-3", "after"),
        ("/api/events?after=1&after=2", "after"),
        ("/api/events?sesion=x", "sesion"),
        ("/api/events?order=sideways", "order"),
        ("/api/events?q=%E0%A4", "q"),
        ("/api/sessions?limit=0", "limit"),
        ("/api/sessions/abc?x=1", "x"),
        ("/api/stats?bucket=0", "bucket"),
        ("/api/stats?since=soon", "since"),
        ("/api/stats?bucket=1&since=0", "bucket"),
    ] {
        let body = server.json(path, 400);
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(parameter),
            "{path}: {body}"
        );
    }
    assert_eq!(server.get("/api/nothing").status, 404);
    assert_eq!(server.get("/api/sessions/no-such-session").status, 404);
}

#[test]
fn sessions_list_status_duration_and_counts_grouped_by_machine() {
    let (_db, server) = loaded();
    let body = server.json("/api/sessions", 200);
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(body["machines"], serde_json::json!(["alpha", "beta"]));
    for session in sessions {
        assert_eq!(session["status"], "ended", "{session}");
        assert!(session["duration_ms"].as_i64().unwrap() > 0);
        assert!(session["event_count"].as_i64().unwrap() >= 10);
    }
    let beta = server.json("/api/sessions?machine=beta", 200);
    assert_eq!(beta["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(beta["sessions"][0]["agent_count"], 1);
}

#[test]
fn an_active_session_is_shown_active() {
    let mut db = TestDb::new();
    db.clock = support::in_process::now_millis();
    db.insert_synthetic("gamma", "live-session", 3);
    let server = TestServer::start(&db, None);
    let body = server.json("/api/sessions", 200);
    assert_eq!(body["sessions"][0]["status"], "active");
    assert_eq!(body["sessions"][0]["event_count"], 3);
}

#[test]
fn one_session_has_its_agent_tree_and_tool_calls_slowest_first_with_failures() {
    let (_db, server) = loaded();
    let subagent_session = serde_json::from_str::<Value>(&fixture("subagent")[0]).unwrap()
        ["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = server.json(&format!("/api/sessions/{subagent_session}"), 200);
    assert_eq!(body["session"]["session_id"], subagent_session.as_str());
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["agent_id"], "aedc35a865b2629db");
    assert_eq!(agents[0]["agent_type"], "general-purpose");
    assert!(
        agents[0]["parent_agent_id"].is_null(),
        "started by the main agent"
    );
    assert!(!body["tool_calls"].as_array().unwrap().is_empty());

    let failures_session = serde_json::from_str::<Value>(&fixture("failures")[0]).unwrap()
        ["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = server.json(&format!("/api/sessions/{failures_session}"), 200);
    let calls = body["tool_calls"].as_array().unwrap();
    let durations: Vec<f64> = calls
        .iter()
        .filter_map(|c| c["duration_ms"].as_f64())
        .collect();
    assert!(
        durations.windows(2).all(|pair| pair[0] >= pair[1]),
        "slowest first: {durations:?}"
    );
    let failures = body["failures"].as_array().unwrap();
    assert!(!failures.is_empty(), "{body}");
    assert!(failures.iter().all(|f| f["outcome"] == "failed"));
    assert!(body["hooks"]["PostToolUseFailure"].as_i64().unwrap() >= 1);
}

#[test]
fn stats_count_per_bucket_hook_and_machine() {
    let (db, server) = loaded();
    let since = db.clock - 3_600_000;
    let body = server.json(&format!("/api/stats?bucket=60&since={since}"), 200);
    let total =
        fixture("tools_basic").len() + fixture("subagent").len() + fixture("failures").len();
    assert_eq!(body["total"], total as i64);
    assert_eq!(body["bucket"], 60);
    assert!(body["per_hook"]["PreToolUse"].as_i64().unwrap() > 0);
    assert!(body["per_machine"]["beta"].as_i64().unwrap() > 0);
    let series = body["series"].as_array().unwrap();
    assert!(series
        .iter()
        .all(|point| point["t"].as_i64().unwrap() % 60_000 == 0));
    assert_eq!(
        series
            .iter()
            .map(|p| p["count"].as_i64().unwrap())
            .sum::<i64>(),
        total as i64
    );
}

#[test]
fn health_and_metrics_report_the_counters() {
    use hooktrail_collector::{RedisLink, Source};
    use std::sync::atomic::Ordering;
    let (_db, server) = loaded();
    server
        .stats
        .source(Source::Socket)
        .stored
        .store(33, Ordering::Relaxed);
    server
        .stats
        .source(Source::Redis)
        .duplicates
        .store(2, Ordering::Relaxed);
    server.stats.writer_queue.store(7, Ordering::Relaxed);
    server.stats.redis_pending.store(5, Ordering::Relaxed);
    server.stats.set_redis_link(RedisLink::Up);
    server
        .stats
        .record_commit(std::time::Duration::from_millis(3));
    server
        .stats
        .stored_per_hook
        .lock()
        .unwrap()
        .insert("PreToolUse".into(), 9);
    let health = server.json("/api/health", 200);
    assert_eq!(health["redis"]["link"], "up");
    assert_eq!(health["redis"]["pending"], 5);
    assert_eq!(health["writer"]["queue"], 7);
    assert_eq!(health["sources"]["socket"]["stored"], 33);
    assert!(health["database"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(health["websocket"]["clients"], 0);

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "hooktrail_events_stored_total{source=\"socket\"} 33",
        "hooktrail_events_duplicate_total{source=\"redis\"} 2",
        "hooktrail_events_stored_by_hook_total{hook=\"PreToolUse\"} 9",
        "hooktrail_writer_queue_depth 7",
        "hooktrail_redis_link{state=\"up\"} 1",
        "hooktrail_commit_duration_seconds_bucket{le=\"0.005\"} 1",
        "hooktrail_commit_duration_seconds_count 1",
        "hooktrail_websocket_clients 0",
        "# TYPE hooktrail_commit_duration_seconds histogram",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            metrics.body
        );
    }
}

#[test]
fn the_page_and_its_assets_are_served_with_their_types() {
    let (_db, server) = loaded();
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/welcome.js", "text/javascript"),
        ("/app.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            reply.header("Content-Type").unwrap().starts_with(kind),
            "{path}"
        );
    }
    // The page is native ES modules: every module in ui/ is served as
    // JavaScript, byte for byte, so none is left out of http.rs's table.
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    for entry in std::fs::read_dir(&ui).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".js") {
            continue;
        }
        let reply = server.get(&format!("/{name}"));
        assert_eq!(reply.status, 200, "{name} is served");
        assert!(
            reply
                .header("Content-Type")
                .unwrap()
                .starts_with("text/javascript"),
            "{name}"
        );
        assert_eq!(
            reply.body,
            std::fs::read_to_string(ui.join(&name)).unwrap(),
            "{name}"
        );
    }
    let page = server.get("/");
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(
        page.body
            .contains(r#"<script type="module" src="/app.js">"#),
        "the page loads its modules from app.js"
    );
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no CDN"
    );
}

#[test]
fn stats_with_seconds_buckets_count_events_and_agree_with_the_minute_rollup() {
    let (db, server) = loaded();
    let since = db.clock - 3_600_000;
    let by_minute = server.json(&format!("/api/stats?bucket=60&since={since}"), 200);
    let by_seconds = server.json(&format!("/api/stats?bucket=30&since={since}"), 200);
    assert_eq!(by_seconds["bucket"], 30);
    assert_eq!(by_seconds["total"], by_minute["total"]);
    assert_eq!(by_seconds["per_hook"], by_minute["per_hook"]);
    assert_eq!(by_seconds["per_machine"], by_minute["per_machine"]);
}

#[test]
fn the_timeline_has_a_lane_per_subagent_with_tool_spans_and_prompt_markers() {
    let (_db, server) = loaded();
    let session = serde_json::from_str::<Value>(&fixture("subagent")[0]).unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let timeline = server.json(&format!("/api/sessions/{session}/timeline"), 200);
    let lanes = timeline["lanes"].as_array().unwrap();
    assert_eq!(lanes.len(), 2, "{timeline}");
    assert_eq!(lanes[1]["agent_id"], "aedc35a865b2629db");
    assert_eq!(lanes[1]["label"], "general-purpose");
    let spans = timeline["spans"].as_array().unwrap();
    // [lane, kind, label, start, end, outcome, seq, end_seq]
    assert!(spans
        .iter()
        .any(|s| s[0] == 0 && s[1] == "tool" && s[2] == "Agent" && s[5] == "ok"));
    assert!(spans
        .iter()
        .any(|s| s[0] == 1 && s[1] == "tool" && s[2] == "Bash" && s[5] == "ok"));
    assert!(spans
        .iter()
        .all(|s| s[4].as_i64().unwrap() >= s[3].as_i64().unwrap()));
    let prompts = timeline["markers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m[1] == "UserPromptSubmit")
        .count();
    assert_eq!(prompts, 2);
    server.json("/api/sessions/nope/timeline", 404);
    server.json(&format!("/api/sessions/{session}/timeline?x=1"), 400);
}

#[test]
fn sessions_sort_by_recent_cost_and_duration_with_waiting_sessions_first() {
    let (db, server) = loaded();
    let ids = |page: &Value| -> Vec<String> {
        page["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let recent = ids(&server.json("/api/sessions?sort=recent", 200));
    assert_eq!(recent, ids(&server.json("/api/sessions", 200)));
    let longest = server.json("/api/sessions?sort=duration", 200);
    let durations: Vec<i64> = longest["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["duration_ms"].as_i64().unwrap())
        .collect();
    assert!(durations.windows(2).all(|w| w[0] >= w[1]), "{durations:?}");
    // The oldest session waits for the user: it comes first in every order.
    let oldest = recent.last().unwrap().clone();
    db.connection
        .execute(
            "UPDATE sessions SET state = 'waiting', state_detail = 'permission: Bash' WHERE session_id = ?1",
            [&oldest],
        )
        .unwrap();
    db.connection
        .execute(
            "INSERT INTO usage (key, message_id, session_id, model, ts, output_tokens, cost_usd, origin) \
             VALUES ('k1', 'm1', ?1, 'claude-opus-4-5', 1, 10, 2.5, 'hook')",
            [&recent[0]],
        )
        .unwrap();
    for sort in ["recent", "cost", "duration"] {
        let page = server.json(&format!("/api/sessions?sort={sort}"), 200);
        assert_eq!(ids(&page)[0], oldest, "{sort}");
        assert_eq!(page["sessions"][0]["state"], "waiting");
    }
    let by_cost = server.json("/api/sessions?sort=cost", 200);
    assert_eq!(ids(&by_cost)[1], recent[0], "the priced session next");
    assert_eq!(by_cost["sessions"][1]["cost_usd"], 2.5);
    server.json("/api/sessions?sort=price", 400);
}

#[test]
fn search_finds_substrings_in_any_case_through_the_index_and_rare_filters_answer_whole_pages() {
    let (_db, server) = loaded();
    // A substring of a Bash command, in another case.
    let page = server.json(&format!("/api/events?q={}", encode("IMG SRC=X")), 200);
    let events = page["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["payload"]
        .to_string()
        .to_lowercase()
        .contains("img src=x")));
    assert_eq!(page["more"], false);
    // Two characters are too short for trigrams: the payload scan answers.
    let short = server.json("/api/events?q=Wr", 200);
    assert!(!short["events"].as_array().unwrap().is_empty());
    let rare = server.json("/api/events?hook=SessionEnd&order=desc", 200);
    assert_eq!(rare["more"], false);
    assert!(!rare["events"].as_array().unwrap().is_empty());
}

#[test]
fn a_search_with_filters_pages_by_cursor_to_exactly_the_filtered_hits_in_both_directions() {
    let (_db, server) = loaded();
    let all = server.json("/api/events?limit=1000&q=echo", 200);
    let hits = all["events"].as_array().unwrap();
    assert!(hits.len() >= 4, "{all}");
    for (query, keep) in [
        (
            "machine=alpha&hook=PreToolUse",
            &(|e: &Value| e["machine"] == "alpha" && e["hook"] == "PreToolUse")
                as &dyn Fn(&Value) -> bool,
        ),
        ("agent=main&machine=beta", &|e: &Value| {
            e["agent_id"].is_null() && e["machine"] == "beta"
        }),
        ("tool=Bash&hook=PostToolUse", &|e: &Value| {
            e["tool"] == "Bash" && e["hook"] == "PostToolUse"
        }),
        ("hook=SessionEnd", &|e: &Value| e["hook"] == "SessionEnd"),
    ] {
        let expected: Vec<i64> = hits
            .iter()
            .filter(|e| keep(e))
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        for (order, cursor_name) in [("asc", "after"), ("desc", "before")] {
            let mut found = Vec::new();
            let mut cursor: Option<i64> = None;
            for _ in 0..100 {
                let position = cursor
                    .map(|seq| format!("&{cursor_name}={seq}"))
                    .unwrap_or_default();
                let page = server.json(
                    &format!("/api/events?limit=1&q=echo&{query}&order={order}{position}"),
                    200,
                );
                found.extend(seqs(&page));
                cursor = Some(page["next"].as_i64().unwrap());
                if page["more"] == false {
                    break;
                }
            }
            let mut wanted = expected.clone();
            if order == "desc" {
                wanted.reverse();
            }
            assert_eq!(found, wanted, "q=echo&{query}&order={order}");
        }
    }
}

#[test]
fn a_session_whose_id_holds_a_slash_opens_with_percent_2f() {
    let mut db = TestDb::new();
    let payloads: Vec<String> = fixture("tools_basic")
        .iter()
        .map(|text| {
            let mut payload: Value = serde_json::from_str(text).unwrap();
            payload["session_id"] = Value::from("team/alpha 1+2");
            payload.to_string()
        })
        .collect();
    db.insert_payloads("alpha", &payloads);
    let server = TestServer::start(&db, None);
    let id = encode("team/alpha 1+2");
    assert!(id.contains("%2F"));
    let session = server.json(&format!("/api/sessions/{id}"), 200);
    assert_eq!(session["session"]["session_id"], "team/alpha 1+2");
    let timeline = server.json(&format!("/api/sessions/{id}/timeline"), 200);
    assert!(!timeline["lanes"].as_array().unwrap().is_empty());
    // A raw `/` still splits the path: that is another route.
    assert_eq!(server.get("/api/sessions/team/alpha").status, 400);
}

#[test]
fn hooks_lists_every_known_hook_then_invalid_and_unknown() {
    use hooktrail_shared::envelope::HookEvent;
    let (_db, server) = loaded();
    let answer = server.json("/api/hooks", 200);
    let names: Vec<&str> = answer["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = HookEvent::ALL.iter().map(|hook| hook.name()).collect();
    expected.extend(["Invalid", "Unknown"]);
    assert_eq!(names, expected);
}

/// Waiting time runs from a `PermissionRequest` to its agent's next event
/// (a `Notification` does not end it); a session without one skips that
/// count and shows 0.
#[test]
fn a_session_counts_its_permission_waits_and_one_without_shows_zero() {
    let mut db = TestDb::new();
    let line = |hook: &str| {
        serde_json::json!({"session_id": "waits", "cwd": "/w", "hook_event_name": hook, "tool_name": "Bash", "tool_use_id": "toolu_w"})
            .to_string()
    };
    let waits = [
        line("PreToolUse"),
        line("PermissionRequest"),
        line("Notification"),
        line("Notification"),
        line("PostToolUse"),
    ];
    db.insert_payloads("alpha", &waits);
    db.insert_payloads("alpha", &fixture("tools_basic"));
    let server = TestServer::start(&db, None);
    let waited = server.json("/api/sessions/waits", 200);
    assert_eq!(waited["time"]["waiting_ms"], 3, "{}", waited["time"]);
    let sessions = server.json("/api/sessions", 200);
    let other = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .find(|id| id != "waits")
        .unwrap();
    let plain = server.json(&format!("/api/sessions/{}", encode(&other)), 200);
    assert_eq!(plain["time"]["waiting_ms"], 0, "{}", plain["time"]);
}
