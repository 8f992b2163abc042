//! What the receiver stores, lifted from decoded OTLP messages: Claude
//! Code's log events ([`OtelEvent`], with the `api_request` figures the join
//! needs) and its metric points ([`MetricPoint`]), plus the count of records
//! refused, for the answer's `partial_success`.
//!
//! Pure: no I/O, so the rules are unit-tested on hand-built messages.
//!
//! **Invariant:** every stored record has a `key` derived from its content
//! alone (name, time, attributes), so an exporter's retry of an export the
//! collector already stored (its answer was lost) stores nothing twice.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::proto::collector::logs::v1::ExportLogsServiceRequest;
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::proto::common::v1::{any_value, AnyValue, KeyValue};
use super::proto::logs::v1::LogRecord;
use super::proto::metrics::v1::{
    metric, number_data_point, AggregationTemporality, NumberDataPoint,
};

/// The prefix Claude Code puts on its event and metric names.
const PREFIX: &str = "claude_code.";

/// The largest attributes one record may carry, as JSON: a bigger record is
/// refused (counted in `partial_success`) rather than stored.
pub(crate) const MAX_ATTRS_BYTES: usize = 64 * 1024;

/// One log event, as stored in `otel_events`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OtelEvent {
    /// Content hash: the idempotency key.
    pub(crate) key: String,
    /// `event.name` without Claude Code's prefix (`api_request`, `tool_result`...).
    pub(crate) name: String,
    /// The event's time, Unix milliseconds.
    pub(crate) ts: i64,
    pub(crate) session_id: Option<String>,
    pub(crate) prompt_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) tool_use_id: Option<String>,
    /// `duration_ms` of `api_request` and `tool_result`.
    pub(crate) duration_ms: Option<f64>,
    /// The log record's attributes, as a JSON object (redacted before storing).
    pub(crate) attrs: String,
    /// For `api_request`: the figures the usage join needs.
    pub(crate) request: Option<ApiRequest>,
}

/// Claude Code's own figures for one API request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ApiRequest {
    pub(crate) request_id: Option<String>,
    pub(crate) model: String,
    pub(crate) cost_usd: f64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_read_tokens: u64,
    pub(crate) cache_write_5m_tokens: u64,
    pub(crate) cache_write_1h_tokens: u64,
    /// `speed` (`normal`, `fast`): fast mode is priced differently.
    pub(crate) speed: Option<String>,
}

/// Whether a metric point is a delta or a running total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Temporality {
    /// The point is what was added since the previous point: points add up.
    Delta,
    /// The point is the total since `start_ts`: the last one per series counts.
    Cumulative,
}

impl Temporality {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Temporality::Delta => "delta",
            Temporality::Cumulative => "cumulative",
        }
    }
}

/// One number data point of a sum or gauge metric, as stored in
/// `otel_metric_points`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricPoint {
    pub(crate) key: String,
    /// The metric's name without Claude Code's prefix (`lines_of_code.count`).
    pub(crate) name: String,
    pub(crate) session_id: Option<String>,
    /// The point's time, Unix milliseconds, and its UTC day (`YYYY-MM-DD`).
    pub(crate) ts: i64,
    pub(crate) day: String,
    pub(crate) start_ts: Option<i64>,
    /// The `type` attribute (`added`/`removed` lines, `input`/`output` tokens, `user`/`cli` time).
    pub(crate) kind: Option<String>,
    pub(crate) attrs: String,
    pub(crate) value: f64,
    pub(crate) temporality: Temporality,
}

/// What one export request yields.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) events: Vec<OtelEvent>,
    pub(crate) points: Vec<MetricPoint>,
    /// Records (log records or data points) refused, and why (the first reason).
    pub(crate) rejected: i64,
    pub(crate) reason: Option<String>,
}

impl Batch {
    fn reject(&mut self, reason: &str) {
        self.rejected += 1;
        if self.reason.is_none() {
            self.reason = Some(reason.to_owned());
        }
    }

    /// Records to store.
    pub(crate) fn len(&self) -> usize {
        self.events.len() + self.points.len()
    }
}

/// An `AnyValue` as JSON: strings, numbers and booleans as themselves,
/// arrays and key-value lists nested, bytes as lowercase hex.
pub(crate) fn any_to_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Value::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
        Some(any_value::Value::IntValue(number)) => Value::from(*number),
        Some(any_value::Value::DoubleValue(number)) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(attributes(&list.values)),
        Some(any_value::Value::BytesValue(bytes)) => {
            Value::String(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// Key-value attributes as a JSON object (a repeated key: the last wins).
pub(crate) fn attributes(pairs: &[KeyValue]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|pair| {
            let value = pair.value.as_ref().map_or(Value::Null, any_to_json);
            (pair.key.clone(), value)
        })
        .collect()
}

/// A text attribute; numbers are written as text.
fn text(attrs: &Map<String, Value>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A number attribute: Claude Code writes some as numbers, some as text.
fn number(attrs: &Map<String, Value>, key: &str) -> Option<f64> {
    match attrs.get(key)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|value: &f64| value.is_finite())
}

/// A token count attribute: a whole number that is not negative.
fn count(attrs: &Map<String, Value>, key: &str) -> u64 {
    number(attrs, key)
        .filter(|value| *value >= 0.0 && value.fract() == 0.0)
        .map_or(0, |value| value as u64)
}

/// The first 32 hex digits of SHA-256 over `parts`, each length-prefixed.
fn content_key(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Nanoseconds since the epoch to milliseconds.
fn millis(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// The UTC day of a Unix-milliseconds time, `YYYY-MM-DD`.
pub(crate) fn day_of(ts: i64) -> String {
    let (year, month, day) = hooktrail_shared::time::civil_from_days(ts.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Every log record of an export, as events (or refusals).
pub(crate) fn from_logs(request: &ExportLogsServiceRequest, now_ms: i64) -> Batch {
    let mut batch = Batch::default();
    for resource in &request.resource_logs {
        for scope in &resource.scope_logs {
            for record in &scope.log_records {
                match event(record, now_ms) {
                    Ok(event) => batch.events.push(event),
                    Err(reason) => batch.reject(reason),
                }
            }
        }
    }
    batch
}

/// One log record as an event, or why it is refused.
fn event(record: &LogRecord, now_ms: i64) -> Result<OtelEvent, &'static str> {
    let attrs = attributes(&record.attributes);
    let body_name = match record.body.as_ref().map(any_to_json) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    let name = text(&attrs, "event.name")
        .or_else(|| Some(record.event_name.clone()).filter(|name| !name.is_empty()))
        .or(body_name)
        .ok_or(
            "a log record without an event name (attribute event.name, event_name or a text body)",
        )?;
    let name = name.strip_prefix(PREFIX).unwrap_or(&name).to_owned();
    let json = Value::Object(attrs.clone()).to_string();
    if json.len() > MAX_ATTRS_BYTES {
        return Err("a log record whose attributes are over 64 KiB");
    }
    let ts = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|nanos| *nanos > 0)
        .map(millis)
        .or_else(|| {
            text(&attrs, "event.timestamp")
                .and_then(|text| hooktrail_shared::time::parse_rfc3339_millis(&text))
        })
        .unwrap_or(now_ms);
    let request = if name == "api_request" {
        Some(api_request(&attrs)?)
    } else {
        None
    };
    Ok(OtelEvent {
        key: content_key(&[
            name.as_bytes(),
            &record.time_unix_nano.to_le_bytes(),
            json.as_bytes(),
        ]),
        ts,
        session_id: text(&attrs, "session.id"),
        prompt_id: text(&attrs, "prompt.id"),
        request_id: text(&attrs, "request_id"),
        tool_use_id: text(&attrs, "tool_use_id"),
        duration_ms: number(&attrs, "duration_ms"),
        attrs: json,
        request,
        name,
    })
}

/// The figures of an `api_request`; a cost that is missing, negative or
/// not a number refuses the record (it would corrupt the sums).
fn api_request(attrs: &Map<String, Value>) -> Result<ApiRequest, &'static str> {
    let cost_usd = number(attrs, "cost_usd")
        .filter(|cost| *cost >= 0.0)
        .ok_or("an api_request without a cost_usd that is a number of dollars")?;
    let cache_write = count(attrs, "cache_creation_tokens");
    let cache_write_1h = count(attrs, "cache_creation_1h_tokens");
    // Older Claude Code versions give the total only: all of it is 5-minute.
    let cache_write_5m = match attrs.get("cache_creation_5m_tokens") {
        Some(_) => count(attrs, "cache_creation_5m_tokens"),
        None => cache_write.saturating_sub(cache_write_1h),
    };
    Ok(ApiRequest {
        request_id: text(attrs, "request_id"),
        model: text(attrs, "model").unwrap_or_else(|| "unknown".to_owned()),
        cost_usd,
        input_tokens: count(attrs, "input_tokens"),
        output_tokens: count(attrs, "output_tokens"),
        cache_read_tokens: count(attrs, "cache_read_tokens"),
        cache_write_5m_tokens: cache_write_5m,
        cache_write_1h_tokens: cache_write_1h,
        speed: text(attrs, "speed"),
    })
}

/// Every number data point of the export's sums and gauges; histogram and
/// summary points are refused (Claude Code sends none).
pub(crate) fn from_metrics(request: &ExportMetricsServiceRequest) -> Batch {
    let mut batch = Batch::default();
    for resource in &request.resource_metrics {
        for scope in &resource.scope_metrics {
            for metric in &scope.metrics {
                let name = metric.name.strip_prefix(PREFIX).unwrap_or(&metric.name);
                let (points, temporality) = match &metric.data {
                    Some(metric::Data::Sum(sum)) => (&sum.data_points, sum.aggregation_temporality),
                    Some(metric::Data::Gauge(gauge)) => (
                        &gauge.data_points,
                        AggregationTemporality::Cumulative as i32,
                    ),
                    Some(metric::Data::Histogram(data)) => {
                        skip(&mut batch, data.data_points.len());
                        continue;
                    }
                    Some(metric::Data::ExponentialHistogram(data)) => {
                        skip(&mut batch, data.data_points.len());
                        continue;
                    }
                    Some(metric::Data::Summary(data)) => {
                        skip(&mut batch, data.data_points.len());
                        continue;
                    }
                    None => continue,
                };
                let temporality = if temporality == AggregationTemporality::Delta as i32 {
                    Temporality::Delta
                } else {
                    Temporality::Cumulative
                };
                for point in points {
                    match metric_point(name, point, temporality) {
                        Ok(point) => batch.points.push(point),
                        Err(reason) => batch.reject(reason),
                    }
                }
            }
        }
    }
    batch
}

fn skip(batch: &mut Batch, points: usize) {
    for _ in 0..points {
        batch.reject("histogram and summary points are not stored");
    }
}

fn metric_point(
    name: &str,
    point: &NumberDataPoint,
    temporality: Temporality,
) -> Result<MetricPoint, &'static str> {
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => return Err("a data point without a value"),
    };
    if !value.is_finite() {
        return Err("a data point whose value is not a finite number");
    }
    if point.time_unix_nano == 0 {
        return Err("a data point without a time");
    }
    let attrs = attributes(&point.attributes);
    let json = Value::Object(attrs.clone()).to_string();
    if json.len() > MAX_ATTRS_BYTES {
        return Err("a data point whose attributes are over 64 KiB");
    }
    let ts = millis(point.time_unix_nano);
    Ok(MetricPoint {
        key: content_key(&[
            name.as_bytes(),
            &point.start_time_unix_nano.to_le_bytes(),
            &point.time_unix_nano.to_le_bytes(),
            json.as_bytes(),
            &value.to_le_bytes(),
        ]),
        name: name.to_owned(),
        session_id: text(&attrs, "session.id"),
        day: day_of(ts),
        ts,
        start_ts: Some(point.start_time_unix_nano)
            .filter(|nanos| *nanos > 0)
            .map(millis),
        kind: text(&attrs, "type"),
        attrs: json,
        value,
        temporality,
    })
}
