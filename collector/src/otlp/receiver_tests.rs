//! The receiver over real HTTP, with a stand-in writer that commits at once
//! and keeps what it was handed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use super::proto::collector::logs::v1::ExportLogsServiceRequest;
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::proto::common::v1::{any_value, AnyValue, KeyValue};
use super::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use super::proto::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use super::receiver::Receiver;
use super::records::{Batch, Temporality};
use super::OtlpAuth;
use crate::ingest::{ByteBudget, Committed, WriterQueue};
use crate::stats::Stats;

/// A receiver on a free loopback port, and what its stand-in writer got.
struct Harness {
    port: u16,
    stored: Arc<Mutex<Vec<Batch>>>,
    shutdown: Arc<AtomicBool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn start(auth: OtlpAuth, listen: &str) -> Harness {
    let server = tiny_http::Server::http(listen).unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let (sender, receiver) = crossbeam_channel::bounded::<crate::ingest::Queued>(4);
    let stored = Arc::new(Mutex::new(Vec::new()));
    let kept = stored.clone();
    std::thread::spawn(move || {
        for (submission, _held) in receiver {
            if let Some(batch) = submission.otel {
                kept.lock().unwrap().push(*batch);
            }
            (submission.acknowledge)(Committed::default());
        }
    });
    let shutdown = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    Receiver {
        server,
        auth,
        queue: WriterQueue {
            sender,
            bytes: ByteBudget::new(1 << 20),
            stats: stats.clone(),
        },
        shutdown: shutdown.clone(),
        counters: stats.otlp.clone(),
        redactor: Arc::new(hooktrail_shared::redact::Redactor::new(Default::default())),
    }
    .spawn()
    .unwrap();
    Harness {
        port,
        stored,
        shutdown,
    }
}

/// One HTTP/1.1 request; the status, the headers' text and the body.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[split + 4..].to_vec())
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn logs(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn api_request(request_id: &str, cost: f64) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_764_000_000_123_000_000,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                "claude_code.api_request".into(),
            )),
        }),
        attributes: vec![
            text("event.name", "api_request"),
            text("session.id", "s1"),
            text("prompt.id", "p1"),
            text("model", "claude-sonnet-4-5"),
            text("request_id", request_id),
            double("cost_usd", cost),
            text("input_tokens", "10"),
            text("output_tokens", "5"),
            text("duration_ms", "1200"),
        ],
        ..Default::default()
    }
}

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn protobuf_logs_are_stored_with_the_api_request_figures() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    let body = logs(vec![api_request("req_1", 0.0125)]).encode_to_vec();
    let (status, head, answer) = post(harness.port, "/v1/logs", &[PROTOBUF], &body);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/x-protobuf"), "{head}");
    // Fully accepted: no partial_success.
    assert!(answer.is_empty(), "{answer:?}");
    let stored = harness.stored.lock().unwrap();
    let event = &stored[0].events[0];
    assert_eq!(event.name, "api_request");
    assert_eq!(event.session_id.as_deref(), Some("s1"));
    assert_eq!(event.ts, 1_764_000_000_123);
    assert_eq!(event.duration_ms, Some(1200.0));
    let request = event.request.as_ref().unwrap();
    assert_eq!(request.request_id.as_deref(), Some("req_1"));
    assert_eq!(request.cost_usd, 0.0125);
    assert_eq!((request.input_tokens, request.output_tokens), (10, 5));
}

#[test]
fn json_logs_follow_the_otlp_json_mapping() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    // lowerCamelCase, int64 as strings, hex ids, an intValue as a string.
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"claude-code"}}]},
      "scopeLogs":[{"scope":{"name":"com.anthropic.claude_code.events"},"logRecords":[{
        "timeUnixNano":"1764000000500000000","observedTimeUnixNano":"1764000000600000000",
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "body":{"stringValue":"claude_code.tool_result"},
        "attributes":[{"key":"event.name","value":{"stringValue":"tool_result"}},
          {"key":"session.id","value":{"stringValue":"s2"}},
          {"key":"tool_use_id","value":{"stringValue":"toolu_9"}},
          {"key":"duration_ms","value":{"intValue":"42"}},
          {"key":"success","value":{"boolValue":true}}],
        "unknownField": 1}]}]}]}"#;
    let (status, head, answer) = post(harness.port, "/v1/logs", &[JSON], body.as_bytes());
    assert_eq!(status, 200, "{head}");
    assert_eq!(String::from_utf8_lossy(&answer), "{}");
    let stored = harness.stored.lock().unwrap();
    let event = &stored[0].events[0];
    assert_eq!(event.name, "tool_result");
    assert_eq!(event.tool_use_id.as_deref(), Some("toolu_9"));
    assert_eq!(event.duration_ms, Some(42.0));
    assert_eq!(event.ts, 1_764_000_000_500);
    assert!(event.attrs.contains(r#""success":true"#), "{}", event.attrs);
}

#[test]
fn gzip_bodies_are_inflated_and_metrics_keep_their_temporality() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    let point = NumberDataPoint {
        attributes: vec![text("session.id", "s3"), text("type", "added")],
        start_time_unix_nano: 1_764_000_000_000_000_000,
        time_unix_nano: 1_764_000_060_000_000_000,
        value: Some(number_data_point::Value::AsInt(12)),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "claude_code.lines_of_code.count".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![point],
                        aggregation_temporality: AggregationTemporality::Delta as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&request.encode_to_vec()).unwrap();
    let body = encoder.finish().unwrap();
    let (status, head, _) = post(
        harness.port,
        "/v1/metrics",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        &body,
    );
    assert_eq!(status, 200, "{head}");
    let stored = harness.stored.lock().unwrap();
    let point = &stored[0].points[0];
    assert_eq!(point.name, "lines_of_code.count");
    assert_eq!(point.value, 12.0);
    assert_eq!(point.kind.as_deref(), Some("added"));
    assert_eq!(point.day, "2025-11-24");
    assert_eq!(point.temporality, Temporality::Delta);
}

#[test]
fn malformed_bodies_get_400_with_a_reason_and_store_nothing() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    let (status, _, answer) = post(harness.port, "/v1/logs", &[JSON], b"{\"resourceLogs\": 7}");
    assert_eq!(status, 400);
    let reason: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("not valid OTLP JSON"),
        "{reason}"
    );
    let (status, _, answer) = post(harness.port, "/v1/logs", &[PROTOBUF], b"\xff\xff\xff\xff");
    assert_eq!(status, 400);
    // A protobuf google.rpc.Status: its message field holds the reason.
    assert!(String::from_utf8_lossy(&answer).contains("not a valid OTLP protobuf"));
    let (status, _, _) = post(
        harness.port,
        "/v1/logs",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(status, 400);
    let (status, _, _) = post(
        harness.port,
        "/v1/logs",
        &[("Content-Type", "text/plain")],
        b"x",
    );
    assert_eq!(status, 415);
    let (status, _, _) = post(harness.port, "/v1/traces", &[PROTOBUF], b"");
    assert_eq!(status, 404);
    assert!(harness.stored.lock().unwrap().is_empty());
}

#[test]
fn oversized_bodies_and_gzip_bombs_get_413() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    let big = vec![b' '; super::decode::MAX_BODY_BYTES + 10];
    let (status, _, _) = post(harness.port, "/v1/logs", &[JSON], &big);
    assert_eq!(status, 413);
    // 64 MiB of zeros compress to about 64 KiB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < super::decode::MAX_BODY_BYTES);
    let (status, _, answer) = post(
        harness.port,
        "/v1/logs",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    assert!(harness.stored.lock().unwrap().is_empty());
}

#[test]
fn a_remote_receiver_wants_the_token() {
    // Listening on every address: the token rule applies to every client.
    let harness = start(OtlpAuth::Bearer("secret-token".into()), "0.0.0.0:0");
    let body = logs(vec![api_request("req_2", 0.5)]).encode_to_vec();
    let (status, head, _) = post(harness.port, "/v1/logs", &[PROTOBUF], &body);
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    let (status, _, _) = post(
        harness.port,
        "/v1/logs",
        &[PROTOBUF, ("Authorization", "Bearer wrong-token!")],
        &body,
    );
    assert_eq!(status, 401);
    assert!(harness.stored.lock().unwrap().is_empty());
    let (status, _, _) = post(
        harness.port,
        "/v1/logs",
        &[PROTOBUF, ("Authorization", "Bearer secret-token")],
        &body,
    );
    assert_eq!(status, 200);
    assert_eq!(harness.stored.lock().unwrap().len(), 1);
}

#[test]
fn refused_records_are_counted_in_partial_success_and_the_rest_stored() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    let nameless = LogRecord {
        time_unix_nano: 5,
        ..Default::default()
    };
    let costless = LogRecord {
        attributes: vec![text("event.name", "api_request"), text("cost_usd", "free")],
        ..Default::default()
    };
    let body = logs(vec![api_request("req_3", 0.25), nameless.clone(), costless]);
    let (status, _, answer) = post(harness.port, "/v1/logs", &[PROTOBUF], &body.encode_to_vec());
    assert_eq!(status, 200);
    // ExportLogsServiceResponse { partial_success { rejected_log_records: 2, error_message } }
    assert!(!answer.is_empty());
    assert!(String::from_utf8_lossy(&answer).contains("without an event name"));
    let json = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "5"}]}]}]});
    let (status, _, answer) = post(
        harness.port,
        "/v1/logs",
        &[JSON],
        json.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");
    let stored = harness.stored.lock().unwrap();
    assert_eq!(
        stored.len(),
        1,
        "the all-refused export hands the writer nothing"
    );
    assert_eq!(stored[0].events.len(), 1);
}

#[test]
fn a_json_double_is_the_exact_double_the_exporter_printed() {
    let harness = start(OtlpAuth::Loopback, "127.0.0.1:0");
    // Claude Code's JSON exporter prints the shortest text of the double;
    // without correct rounding it parses one unit in the last place off.
    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1",
        "attributes":[{"key":"event.name","value":{"stringValue":"api_request"}},
          {"key":"cost_usd","value":{"doubleValue":0.013274999999999999}}]}]}]}]}"#;
    let (status, _, _) = post(harness.port, "/v1/logs", &[JSON], body.as_bytes());
    assert_eq!(status, 200);
    let stored = harness.stored.lock().unwrap();
    let cost = stored[0].events[0].request.as_ref().unwrap().cost_usd;
    assert_eq!(cost.to_bits(), 0.013274999999999999f64.to_bits());
    assert_ne!(cost, 0.013275);
}
