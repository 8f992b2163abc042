//! The receiver's threads: `POST /v1/logs` and `POST /v1/metrics` on a
//! `tiny_http` listener of its own (DESIGN §7a).
//!
//! Each request passes, in order: the path and method (404, 405), the token
//! off loopback (401), the rate bound (429 with `Retry-After`), the media
//! type and compression (415), the size bound (413) and decoding (400, with
//! the reason). Its records then go to the writer's queue, and the answer
//! waits for the commit: 200 (with `partial_success` when records were
//! refused), or 503 when the writer did not commit in time, which the
//! exporter retries (stored records have content keys: nothing twice).
//!
//! **Invariant:** a refused request changes nothing, and a request whose
//! records were stored is answered 200.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response};

use super::decode::{self, Compression, Encoding, Refusal, Signal};
use super::proto::collector::logs::v1::ExportLogsServiceRequest;
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::records::{self, Batch};
use super::OtlpAuth;
use crate::event::Source;
use crate::ingest::{Committed, Submission, WriterQueue};
use crate::service::spawn_thread;
use crate::stats::OtlpCounters;
use hooktrail_shared::redact::Redactor;

/// Threads answering exports: Claude Code exports every few seconds at
/// most, so two keep a slow client from holding up the others.
const WORKERS: usize = 2;

/// Requests per second the receiver accepts, sustained, and in a burst:
/// well above what one Claude Code process sends (a logs and a metrics
/// export per interval), low enough that a runaway exporter cannot keep
/// the writer from the hooks' events.
const RATE_PER_SECOND: f64 = 200.0;
const BURST: f64 = 400.0;

/// How long an answer waits for the writer's commit before a 503.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// The receiver: its listener and what its threads share.
pub(crate) struct Receiver {
    pub(crate) server: tiny_http::Server,
    pub(crate) auth: OtlpAuth,
    pub(crate) queue: WriterQueue,
    pub(crate) shutdown: Arc<AtomicBool>,
    pub(crate) counters: Arc<OtlpCounters>,
    /// The collector's redaction rules, applied to what is stored as text.
    pub(crate) redactor: Arc<Redactor>,
}

/// What every worker shares.
struct Shared {
    auth: OtlpAuth,
    queue: WriterQueue,
    counters: Arc<OtlpCounters>,
    redactor: Arc<Redactor>,
    bucket: Mutex<Bucket>,
}

impl Receiver {
    /// Starts the worker threads; they stop (dropping their queue handles)
    /// within half a second of `shutdown`.
    pub(crate) fn spawn(self) -> Result<Vec<JoinHandle<()>>, String> {
        let server = Arc::new(self.server);
        let shared = Arc::new(Shared {
            auth: self.auth,
            queue: self.queue,
            counters: self.counters,
            redactor: self.redactor,
            bucket: Mutex::new(Bucket::full()),
        });
        (0..WORKERS)
            .map(|index| {
                let server = server.clone();
                let shared = shared.clone();
                let shutdown = self.shutdown.clone();
                spawn_thread(&format!("otlp-{index}"), move || {
                    while !shutdown.load(Ordering::Relaxed) {
                        match server.recv_timeout(Duration::from_millis(500)) {
                            Ok(Some(request)) => shared.answer(request),
                            Ok(None) => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect()
    }
}

/// A token bucket of requests: [`RATE_PER_SECOND`], bursts of [`BURST`].
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full() -> Bucket {
        Bucket {
            tokens: BURST,
            updated: Instant::now(),
        }
    }

    /// Takes one token, if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.updated).as_secs_f64() * RATE_PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
}

impl Shared {
    /// Answers one request (see the module doc for the order of checks).
    fn answer(&self, mut request: Request) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let encoding = header(&request, "Content-Type")
            .and_then(Encoding::from_content_type)
            .unwrap_or(Encoding::Json);
        let outcome = self.export(&mut request, encoding);
        let (status, body) = match outcome {
            Ok(body) => (200, body),
            Err(refusal) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                (refusal.status, decode::status_body(&refusal, encoding))
            }
        };
        let mut response = Response::from_data(body).with_status_code(status);
        let headers = [
            ("Content-Type", encoding.content_type()),
            ("Retry-After", "1"),
            ("WWW-Authenticate", "Bearer"),
        ];
        for (name, value) in headers {
            let wanted = match name {
                "Retry-After" => matches!(status, 429 | 503),
                "WWW-Authenticate" => status == 401,
                _ => true,
            };
            if wanted {
                if let Ok(header) = Header::from_bytes(name, value) {
                    response.add_header(header);
                }
            }
        }
        let _ = request.respond(response);
    }

    /// Checks, decodes and stores one export; the success answer's body.
    fn export(&self, request: &mut Request, encoding: Encoding) -> Result<Vec<u8>, Refusal> {
        let signal = match request.url().split('?').next() {
            Some("/v1/logs") => Signal::Logs,
            Some("/v1/metrics") => Signal::Metrics,
            _ => {
                return Err(Refusal::new(
                    404,
                    "this receiver takes /v1/logs and /v1/metrics",
                ))
            }
        };
        if *request.method() != Method::Post {
            return Err(Refusal::new(405, "exports are POSTed"));
        }
        if !self.authorized(request) {
            return Err(Refusal::new(
                401,
                "a non-loopback receiver needs Authorization: Bearer with the collector's token",
            ));
        }
        if !self
            .bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            return Err(Refusal::new(429, "too many exports: slow down"));
        }
        header(request, "Content-Type")
            .and_then(Encoding::from_content_type)
            .ok_or_else(|| {
                Refusal::new(
                    415,
                    "Content-Type must be application/x-protobuf or application/json",
                )
            })?;
        let compression = Compression::from_header(header(request, "Content-Encoding"))
            .ok_or_else(|| Refusal::new(415, "Content-Encoding must be gzip or none"))?;
        if request
            .body_length()
            .is_some_and(|length| length > decode::MAX_BODY_BYTES)
        {
            return Err(Refusal::new(
                413,
                format!("the body is over {} bytes", decode::MAX_BODY_BYTES),
            ));
        }
        let body = decode::inflate(decode::read_bounded(request.as_reader())?, compression)?;
        let now = hooktrail_shared::time::now_millis();
        let mut batch = match signal {
            Signal::Logs => records::from_logs(
                &decode::message::<ExportLogsServiceRequest>(&body, encoding)?,
                now,
            ),
            Signal::Metrics => records::from_metrics(&decode::message::<
                ExportMetricsServiceRequest,
            >(&body, encoding)?),
        };
        redact(&mut batch, &self.redactor);
        let (rejected, reason) = (batch.rejected, batch.reason.take());
        self.store(batch)?;
        Ok(decode::success_body(
            signal,
            encoding,
            rejected,
            reason.as_deref(),
        ))
    }

    fn authorized(&self, request: &Request) -> bool {
        match &self.auth {
            OtlpAuth::Loopback => true,
            OtlpAuth::Bearer(token) => header(request, "Authorization")
                .and_then(|value| value.strip_prefix("Bearer "))
                .is_some_and(|given| {
                    hooktrail_shared::signed::constant_time_equal(
                        given.trim().as_bytes(),
                        token.as_bytes(),
                    )
                }),
        }
    }

    /// Hands the batch to the writer and waits for its commit.
    fn store(&self, batch: Batch) -> Result<(), Refusal> {
        self.counters
            .rejected_records
            .fetch_add(batch.rejected as u64, Ordering::Relaxed);
        let stored = batch.len() as u64;
        if stored == 0 {
            return Ok(());
        }
        let (done, committed) = crossbeam_channel::bounded::<Committed>(1);
        let submission = Submission {
            // No events: the per-source counters gain nothing from it.
            source: Source::Import,
            events: Vec::new(),
            acknowledge: Box::new(move |outcome| {
                let _ = done.send(outcome);
            }),
            otel: Some(Box::new(batch)),
        };
        let unavailable =
            || Refusal::new(503, "the collector did not store the export in time; retry");
        self.queue.submit(submission).map_err(|_| unavailable())?;
        committed
            .recv_timeout(COMMIT_WAIT)
            .map_err(|_| unavailable())?;
        self.counters.records.fetch_add(stored, Ordering::Relaxed);
        Ok(())
    }
}

/// Applies the collector's redaction rules to what is stored as text (a
/// `user_prompt`'s prompt when `OTEL_LOG_USER_PROMPTS` is on, a tool's
/// parameters), as to every hook event.
fn redact(batch: &mut Batch, redactor: &Redactor) {
    for text in batch
        .events
        .iter_mut()
        .map(|event| &mut event.attrs)
        .chain(batch.points.iter_mut().map(|point| &mut point.attrs))
    {
        if let std::borrow::Cow::Owned(changed) = redactor.redact_payload(text).text {
            *text = changed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_bucket_takes_a_burst_then_refuses_until_it_refills() {
        let mut bucket = Bucket::full();
        // The clock moves on a little while taking: a few refilled tokens.
        let taken = (0..1_000).take_while(|_| bucket.take()).count();
        assert!(
            (BURST as usize..BURST as usize + 20).contains(&taken),
            "{taken}"
        );
        assert!(!bucket.take());
        // A second later, RATE_PER_SECOND more.
        bucket.updated -= Duration::from_secs(1);
        let refilled = (0..1_000).take_while(|_| bucket.take()).count();
        assert!((RATE_PER_SECOND as usize..RATE_PER_SECOND as usize + 20).contains(&refilled));
    }
}
