//! The OTLP receiver end to end (issue 22): the collector binary with
//! `--otlp`, a real HTTP client (ureq) posting Claude Code's `api_request`
//! records of a real CLI run (tests/fixtures/otel) as OTLP protobuf and
//! JSON, gzip or not, and the same run's transcripts shipped by the real
//! emitter; the database read back with the `sqlite3` program.
//!
//! The protobuf messages are written here with prost by the OTLP `.proto`
//! field numbers, not with the collector's vendored types: an independent
//! encoder.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hooktrail_testkit::{wait_until, workspace_root};
use prost::Message;
use serde_json::{json, Value};
use support::process::{emit, http_port, otlp_port, send_lines, Collector};

const SESSION: &str = "94376c17-a6fb-41b7-b656-ab50c3d473f6";

#[derive(Clone, PartialEq, Message)]
struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogs>,
}
#[derive(Clone, PartialEq, Message)]
struct ResourceLogs {
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogs>,
}
#[derive(Clone, PartialEq, Message)]
struct ScopeLogs {
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecord>,
}
#[derive(Clone, PartialEq, Message)]
struct LogRecord {
    #[prost(fixed64, tag = "1")]
    time_unix_nano: u64,
    #[prost(message, optional, tag = "5")]
    body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    attributes: Vec<KeyValue>,
}
#[derive(Clone, PartialEq, Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}
#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(oneof = "Scalar", tags = "1, 2, 3, 4")]
    value: Option<Scalar>,
}
#[derive(Clone, PartialEq, prost::Oneof)]
enum Scalar {
    #[prost(string, tag = "1")]
    Text(String),
    #[prost(bool, tag = "2")]
    Flag(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

/// The fixture's records: Claude Code's console exporter's attributes.
fn records() -> Vec<Value> {
    std::fs::read_to_string(workspace_root().join("tests/fixtures/otel/cost.api_request.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn scalar(value: &Value) -> Scalar {
    match value {
        Value::Bool(flag) => Scalar::Flag(*flag),
        Value::Number(number) if number.is_i64() => Scalar::Int(number.as_i64().unwrap()),
        Value::Number(number) => Scalar::Double(number.as_f64().unwrap()),
        other => Scalar::Text(
            other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned),
        ),
    }
}

fn protobuf(records: &[Value]) -> Vec<u8> {
    let log_records = records
        .iter()
        .map(|record| LogRecord {
            time_unix_nano: 1_764_323_378_899_000_000,
            body: Some(AnyValue {
                value: Some(Scalar::Text("claude_code.api_request".into())),
            }),
            attributes: record
                .as_object()
                .unwrap()
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: Some(AnyValue {
                        value: Some(scalar(value)),
                    }),
                })
                .collect(),
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records }],
        }],
    }
    .encode_to_vec()
}

/// The OTLP JSON mapping: lowerCamelCase, int64 as strings.
fn json_body(records: &[Value]) -> Vec<u8> {
    let log_records: Vec<Value> = records
        .iter()
        .map(|record| {
            let attributes: Vec<Value> = record
                .as_object()
                .unwrap()
                .iter()
                .map(|(key, value)| {
                    let value = match scalar(value) {
                        Scalar::Flag(flag) => json!({"boolValue": flag}),
                        Scalar::Int(number) => json!({"intValue": number.to_string()}),
                        Scalar::Double(number) => json!({"doubleValue": number}),
                        Scalar::Text(text) => json!({"stringValue": text}),
                    };
                    json!({"key": key, "value": value})
                })
                .collect();
            json!({"timeUnixNano": "1764323378899000000",
                   "body": {"stringValue": "claude_code.api_request"},
                   "attributes": attributes})
        })
        .collect();
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": log_records}]}]})
        .to_string()
        .into_bytes()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// POSTs an export with ureq; the status and the body.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(&format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(&body[..]).expect("an answer");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// Rows of `sql` by the `sqlite3` program, columns split on `|`.
fn sqlite3(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let output = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 program");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split('|').map(str::to_owned).collect())
        .collect()
}

fn hook(transcript: &Path, name: &str, extra: Value) -> Value {
    let mut payload = json!({"session_id": SESSION, "transcript_path": transcript,
        "cwd": "/home/dev/project", "prompt_id": "p", "permission_mode": "default",
        "hook_event_name": name});
    payload
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    payload
}

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

#[test]
fn claude_codes_cost_is_stored_exactly_and_joined_to_the_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token", "--otlp", "127.0.0.1:0"]);
    let port = otlp_port(&collector);
    let records = records();
    // Before any transcript row: the first request gets a row of its own.
    let (status, _) = post(port, "/v1/logs", &[PROTOBUF], protobuf(&records[..1]));
    assert_eq!(status, 200);
    let otel_rows = sqlite3(
        &collector.db,
        &format!("SELECT origin, request_id FROM usage WHERE session_id = '{SESSION}'"),
    );
    assert_eq!(
        otel_rows,
        vec![vec![
            "otel".to_owned(),
            records[0]["request_id"].as_str().unwrap().to_owned()
        ]]
    );

    // The transcripts arrive through the real emitter.
    let state = dir.path().join("emitter-state");
    let fixtures = workspace_root().join("tests/fixtures/transcripts/cost");
    let main = fixtures.join(format!("{SESSION}.jsonl"));
    let agent = fixtures.join(format!("{SESSION}/subagents/agent-a6d2496d31dac7fff.jsonl"));
    emit(
        &collector,
        &state,
        &hook(&main, "SessionStart", json!({"source": "startup"})),
    );
    emit(
        &collector,
        &state,
        &hook(
            &agent,
            "SubagentStop",
            json!({"agent_id": "a6d2496d31dac7fff", "agent_transcript_path": agent}),
        ),
    );
    emit(
        &collector,
        &state,
        &hook(&main, "SessionEnd", json!({"reason": "other"})),
    );

    // A malformed export between them is refused and loses nothing.
    let (status, reason) = post(port, "/v1/logs", &[JSON], b"{\"resourceLogs\": [".to_vec());
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&reason));
    // The rest: JSON, gzipped JSON, gzipped protobuf.
    for (status, _) in [
        post(port, "/v1/logs", &[JSON], json_body(&records[1..3])),
        post(
            port,
            "/v1/logs",
            &[JSON, GZIP],
            gzip(&json_body(&records[3..4])),
        ),
        post(
            port,
            "/v1/logs",
            &[PROTOBUF, GZIP],
            gzip(&protobuf(&records[4..])),
        ),
        // A retried export stores nothing twice.
        post(port, "/v1/logs", &[PROTOBUF], protobuf(&records[..1])),
    ] {
        assert_eq!(status, 200);
    }

    let usage_sql = format!(
        "SELECT request_id, origin, otel_cost_usd FROM usage \
         WHERE session_id = '{SESSION}' ORDER BY request_id"
    );
    wait_until("every response joined", Duration::from_secs(20), || {
        let rows = sqlite3(&collector.db, &usage_sql);
        rows.len() == records.len()
            && rows
                .iter()
                .all(|row| row[1] == "hook" && !row[2].is_empty())
    });
    assert_eq!(sqlite3(&collector.db, &usage_sql).len(), records.len());
    let mut expected: Vec<(String, f64)> = records
        .iter()
        .map(|record| {
            (
                record["request_id"].as_str().unwrap().to_owned(),
                record["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    expected.sort_by(|left, right| left.0.cmp(&right.0));
    // The doubles themselves through rusqlite: the sqlite3 program prints
    // at most 17 digits its own way, not always the nearest.
    let stored: Vec<(String, f64)> = collector
        .rows(&format!(
            "SELECT request_id, otel_cost_usd FROM usage WHERE session_id = '{SESSION}' ORDER BY request_id"
        ))
        .iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap()))
        .collect();
    // Each request's cost, and so their sum, exactly (the same doubles).
    assert_eq!(stored, expected);
    let sum = |costs: &[(String, f64)]| costs.iter().map(|(_, cost)| cost).sum::<f64>();
    assert_eq!(sum(&stored), sum(&expected));
    // Counted once: the session's running totals have one response each.
    let totals = sqlite3(
        &collector.db,
        &format!("SELECT usage_responses FROM sessions WHERE session_id = '{SESSION}'"),
    );
    assert_eq!(totals, vec![vec![records.len().to_string()]]);
    let events = sqlite3(
        &collector.db,
        "SELECT COUNT(*), COUNT(DISTINCT key) FROM otel_events WHERE name = 'api_request'",
    );
    assert_eq!(
        events,
        vec![vec![records.len().to_string(), records.len().to_string()]]
    );
}

#[test]
fn metric_points_are_stored_by_session_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token", "--otlp", "127.0.0.1:0"]);
    let port = otlp_port(&collector);
    let point = |kind: &str, value: &str| {
        json!({"attributes": [{"key": "session.id", "value": {"stringValue": "s-metrics"}},
                              {"key": "type", "value": {"stringValue": kind}}],
               "startTimeUnixNano": "1764323300000000000", "timeUnixNano": "1764323378000000000",
               "asInt": value})
    };
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "claude_code.lines_of_code.count", "unit": "count",
         "sum": {"aggregationTemporality": 1, "isMonotonic": true,
                 "dataPoints": [point("added", "40"), point("removed", "7")]}},
        {"name": "claude_code.commit.count",
         "sum": {"aggregationTemporality": 1, "dataPoints": [point("x", "2")]}},
        {"name": "claude_code.some.histogram",
         "histogram": {"dataPoints": [{"timeUnixNano": "1764323378000000000", "count": "3"}]}}
    ]}]}]});
    let (status, answer) = post(port, "/v1/metrics", &[JSON], body.to_string().into_bytes());
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedDataPoints"], "1");
    let rows = sqlite3(
        &collector.db,
        "SELECT name, day, kind, value, temporality FROM otel_metric_points \
         WHERE session_id = 's-metrics' ORDER BY name, kind",
    );
    assert_eq!(
        rows,
        vec![
            vec!["commit.count", "2025-11-28", "x", "2.0", "delta"],
            vec![
                "lines_of_code.count",
                "2025-11-28",
                "added",
                "40.0",
                "delta"
            ],
            vec![
                "lines_of_code.count",
                "2025-11-28",
                "removed",
                "7.0",
                "delta"
            ],
        ]
    );
    // /metrics counts them.
    let metrics = ureq::get(&format!(
        "http://127.0.0.1:{}/metrics",
        http_port(&collector)
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    for line in [
        "hooktrail_otlp_records_total{outcome=\"stored\"} 3",
        "hooktrail_otlp_records_total{outcome=\"rejected\"} 1",
        "hooktrail_otlp_requests_total{outcome=\"accepted\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// A `Stop` envelope of `session` carrying `responses` (message id, request
/// id, model, time, input and output tokens), from `machine` in `cwd`.
fn stop_with_responses(
    session: &str,
    machine: &str,
    cwd: &str,
    id: &str,
    responses: &[(&str, &str, &str, i64, i64, i64)],
) -> String {
    let responses: Vec<Value> = responses
        .iter()
        .map(|(message, request, model, ts, input, output)| {
            json!({"message_id": message, "request_id": request, "model": model, "ts": ts,
                   "sidechain": false, "agent_id": null, "input": input, "output": output,
                   "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 1000, "web_search": 0})
        })
        .collect();
    json!({
        "v": 1, "id": id, "ts": hooktrail_shared::time::now_millis(), "machine": machine,
        "session_id": session, "hook": "Stop", "cwd": cwd,
        "payload": {"session_id": session, "hook_event_name": "Stop", "cwd": cwd},
        "usage": {"transcript": "session", "from": 0, "to": 100, "more": false, "bad_lines": 0,
                  "responses": responses}
    })
    .to_string()
}

/// One `api_request` log record of `session` at `ts` (ms), in the OTLP JSON
/// mapping.
fn api_request_json(session: &str, request: &str, ts: i64, cost: f64) -> Vec<u8> {
    let text = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let int = |key: &str, value: i64| json!({"key": key, "value": {"intValue": value.to_string()}});
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": (ts * 1_000_000).to_string(),
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [text("event.name", "api_request"), text("session.id", session),
            text("model", "claude-sonnet-4-5"), text("request_id", request),
            int("input_tokens", 4000), int("output_tokens", 100), int("cache_read_tokens", 0),
            int("cache_creation_tokens", 0), json!({"key": "cost_usd", "value": {"doubleValue": cost}})]
    }]}]}]})
    .to_string()
    .into_bytes()
}

/// `/api/stats`'s `cost_per_day` (read from the per-day rollup, schema 14)
/// as rows, and the same figures grouped from the usage rows by `sqlite3`.
fn cost_per_day_both_ways(
    collector: &Collector,
    port: u16,
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let body = support::process::http_json(port, "/api/stats");
    let now = body["now"].as_i64().unwrap();
    let since = (now - 30 * 86_400_000) / 86_400_000 * 86_400_000;
    let text = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let route: Vec<Vec<String>> = body["cost_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            [
                "day",
                "model",
                "project",
                "machine",
                "cost_usd",
                "unpriced_responses",
                "tokens",
            ]
            .iter()
            .map(|field| text(&row[field]))
            .collect()
        })
        .collect();
    let direct = sqlite3(
        &collector.db,
        &format!(
            "SELECT (ts / 86400000) * 86400000 AS day, model, cwd, machine, SUM(cost_usd), SUM(cost_usd IS NULL), \
             CAST(TOTAL(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) \
             FROM usage WHERE ts >= {since} GROUP BY day, model, cwd, machine ORDER BY day, model, cwd, machine"
        ),
    );
    (route, direct)
}

/// Costs as numbers (a JSON float and `sqlite3`'s text differ in digits, not
/// in value), the other columns as they are.
fn assert_same_days(route: &[Vec<String>], direct: &[Vec<String>]) {
    assert_eq!(route.len(), direct.len(), "{route:?}\n{direct:?}");
    for (ours, theirs) in route.iter().zip(direct) {
        let cost = |text: &str| text.parse::<f64>().ok();
        assert_eq!(
            (&ours[..4], &ours[5..]),
            (&theirs[..4], &theirs[5..]),
            "{route:?}\n{direct:?}"
        );
        match (cost(&ours[4]), cost(&theirs[4])) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{route:?}\n{direct:?}"),
        }
    }
}

#[test]
fn cost_per_day_from_the_rollup_equals_grouping_the_usage_rows() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token", "--otlp", "127.0.0.1:0"]);
    let port = http_port(&collector);
    let day = 86_400_000;
    let midnight = hooktrail_shared::time::now_millis() / day * day - 3 * day;
    let sonnet = "claude-sonnet-4-5";
    // Session a spans midnight; b shares a's day, model, project and
    // machine (one group across sessions); c is elsewhere, with an
    // unpriced model beside a priced one.
    let lines = vec![
        stop_with_responses(
            "days-a",
            "m1",
            "/p/one",
            "a1",
            &[
                ("ma1", "ra1", sonnet, midnight - 60_000, 1200, 30),
                ("ma2", "ra2", sonnet, midnight + 60_000, 3400, 70),
                ("ma3", "ra3", "claude-unknown-9", midnight + 120_000, 500, 5),
            ],
        ),
        stop_with_responses(
            "days-b",
            "m1",
            "/p/one",
            "b1",
            &[
                ("mb1", "rb1", sonnet, midnight + 3_600_000, 777, 11),
                (
                    "mb2",
                    "rb2",
                    "claude-haiku-4-5",
                    midnight + 2 * day + 5,
                    91,
                    3,
                ),
            ],
        ),
        stop_with_responses(
            "days-c",
            "m2",
            "/p/two",
            "c1",
            &[("mc1", "rc1", sonnet, midnight + day + 1, 10, 1)],
        ),
    ];
    send_lines(&collector.socket, &lines);
    wait_until("the usage rows", Duration::from_secs(20), || {
        collector.query_i64("SELECT COUNT(*) FROM usage") == 6
    });
    let (route, direct) = cost_per_day_both_ways(&collector, port);
    assert_eq!(route.len(), 5, "{route:?}");
    assert_same_days(&route, &direct);

    // Claude Code's report of a request comes first: its row (origin
    // `otel`) counts, in session c's project and machine ...
    let otlp = otlp_port(&collector);
    let (status, _) = post(
        otlp,
        "/v1/logs",
        &[JSON],
        api_request_json("days-c", "rc2", midnight + day + 9, 0.0123),
    );
    assert_eq!(status, 200);
    wait_until("the OTel usage row", Duration::from_secs(20), || {
        collector.query_i64("SELECT COUNT(*) FROM usage WHERE origin = 'otel'") == 1
    });
    let (route, direct) = cost_per_day_both_ways(&collector, port);
    assert_same_days(&route, &direct);
    // ... until the transcript's row of the request retires it, and a
    // redelivered response with more tokens replaces its first count.
    send_lines(
        &collector.socket,
        &[
            stop_with_responses(
                "days-c",
                "m2",
                "/p/two",
                "c2",
                &[("mc2", "rc2", sonnet, midnight + day + 9, 4000, 100)],
            ),
            stop_with_responses(
                "days-a",
                "m1",
                "/p/one",
                "a2",
                &[("ma2", "ra2", sonnet, midnight + 60_000, 3400, 900)],
            ),
        ],
    );
    wait_until(
        "the OTel row retired, the response updated",
        Duration::from_secs(20),
        || {
            collector.query_i64("SELECT COUNT(*) FROM usage WHERE origin = 'otel'") == 0
                && collector.query_i64("SELECT output_tokens FROM usage WHERE message_id = 'ma2'")
                    == 900
        },
    );
    let (route, direct) = cost_per_day_both_ways(&collector, port);
    assert_same_days(&route, &direct);
    let stored = sqlite3(&collector.db, "SELECT COUNT(*) FROM usage_days");
    assert_eq!(
        stored,
        vec![vec![route.len().to_string()]],
        "one rollup row per group, no empty ones"
    );
}
