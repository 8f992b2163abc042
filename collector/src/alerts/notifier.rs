//! The notifier: one thread per destination (`alerts-0`, `alerts-1`, …),
//! each with its own connection ([`DeliveryStore`]), delivering that
//! destination's alerts from the outbox in order.
//!
//! Per destination: the oldest pending alert first, and nothing after it
//! until it is delivered or given up (in order); each attempt bounded by the
//! destination's timeout (5 s by default); a failed attempt retried after
//! `retry_base_ms`, then twice as long each time, at most an hour apart,
//! for a day, then marked `failed`; at most `rate_per_minute` attempts a
//! minute. Threads never share a destination, so a slow receiver holds up
//! only its own alerts, and nothing here touches the writer: alerts are
//! already committed when the notifier reads them, and a receiver that takes
//! 10 s to answer costs ingest nothing.
//!
//! Survives `kill -9`: an alert is `pending` until its delivery is
//! recorded, so one killed mid-delivery is sent again after the restart,
//! with the same `X-Hooktrail-Delivery` id.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::alerts::config::{AlertSettings, Destination, RetryPolicy};
use crate::alerts::deliver::Sender;
use crate::log;
use crate::service::spawn_thread;
use crate::store::outbox::{Attempt, DeliveryStore, PendingAlert};
use hooktrail_shared::time::now_millis;

/// How often an idle destination looks for new alerts.
const POLL: Duration = Duration::from_millis(200);

/// How often old alerts are pruned (`alerts.keep_days`), besides at start.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The notifier threads: everything they need, by name.
pub(crate) struct Notifier {
    /// The database (the writer created and migrated it).
    pub(crate) database: PathBuf,
    /// Destinations and the retry policy.
    pub(crate) settings: Arc<AlertSettings>,
    /// Set at shutdown: each thread stops after its current attempt.
    pub(crate) shutdown: Arc<AtomicBool>,
}

impl Notifier {
    /// Starts one thread per destination.
    pub(crate) fn spawn(self) -> Result<Vec<JoinHandle<()>>, String> {
        let mut threads = Vec::new();
        for (index, destination) in self.settings.destinations.iter().enumerate() {
            let store = DeliveryStore::open(&self.database)?;
            let worker = DestinationWorker {
                destination: destination.clone(),
                sender: Sender::new(destination),
                retry: self.settings.retry,
                store,
                shutdown: self.shutdown.clone(),
                recent_attempts: VecDeque::new(),
                failing: false,
                // One thread prunes for all, destinations no longer
                // configured included.
                prune: (index == 0).then_some(Pruning {
                    keep_for: self.settings.keep_for,
                    last: None,
                }),
            };
            threads.push(spawn_thread(&format!("alerts-{index}"), move || {
                worker.run()
            })?);
        }
        Ok(threads)
    }
}

/// One destination's thread.
struct DestinationWorker {
    /// Where it delivers.
    destination: Destination,
    /// Its HTTP client.
    sender: Sender,
    /// Backoff and give-up.
    retry: RetryPolicy,
    /// Its own connection.
    store: DeliveryStore,
    /// Stops the loop.
    shutdown: Arc<AtomicBool>,
    /// When the attempts of the last minute started (the rate limit).
    recent_attempts: VecDeque<Instant>,
    /// Whether the last attempt failed, so the log says it once per streak.
    failing: bool,
    /// Set on the one thread that prunes old alerts.
    prune: Option<Pruning>,
}

/// When the outbox was last pruned, and what it keeps.
struct Pruning {
    /// `alerts.keep_days`.
    keep_for: Duration,
    /// The last prune; `None` before the first (at start).
    last: Option<Instant>,
}

impl Pruning {
    /// Prunes when due: at start, then every [`PRUNE_EVERY`].
    fn run_if_due(&mut self, store: &DeliveryStore) {
        if self.last.is_some_and(|last| last.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let before = now_millis() - self.keep_for.as_millis() as i64;
        match store.prune(before) {
            Ok(0) => {}
            Ok(count) => log::info(&format!(
                "alerts: removed {count} delivered or given-up alerts older than {} days",
                self.keep_for.as_secs() / 86_400
            )),
            Err(error) => log::warn(&format!("alerts: cannot prune old alerts: {error}")),
        }
    }
}

impl DestinationWorker {
    fn run(mut self) {
        while !self.shutdown.load(Ordering::Relaxed) {
            if let Some(pruning) = self.prune.as_mut() {
                pruning.run_if_due(&self.store);
            }
            let pending = match self.store.next_pending(&self.destination.name) {
                Ok(Some(pending)) => pending,
                Ok(None) => {
                    pause(POLL);
                    continue;
                }
                Err(error) => {
                    log::warn(&format!(
                        "alerts: {}: cannot read the outbox: {error}",
                        self.destination.name
                    ));
                    pause(Duration::from_secs(1));
                    continue;
                }
            };
            let wait = pending.next_attempt_at - now_millis();
            if wait > 0 {
                pause(POLL.min(Duration::from_millis(wait as u64)));
                continue;
            }
            if let Some(wait) = self.rate_limited() {
                pause(POLL.min(wait));
                continue;
            }
            self.attempt(&pending);
        }
    }

    /// How long to wait before the next attempt fits in the rate, if at all.
    fn rate_limited(&mut self) -> Option<Duration> {
        let minute = Duration::from_secs(60);
        while self
            .recent_attempts
            .front()
            .is_some_and(|started| started.elapsed() >= minute)
        {
            self.recent_attempts.pop_front();
        }
        if self.recent_attempts.len() < self.destination.rate_per_minute as usize {
            return None;
        }
        self.recent_attempts
            .front()
            .map(|oldest| minute.saturating_sub(oldest.elapsed()))
    }

    fn attempt(&mut self, pending: &PendingAlert) {
        self.recent_attempts.push_back(Instant::now());
        let outcome = self
            .sender
            .deliver(&self.destination, &pending.delivery_id, &pending.body);
        let now = now_millis();
        let name = &self.destination.name;
        let recorded = match &outcome {
            Ok(answer) => {
                if std::mem::take(&mut self.failing) {
                    log::info(&format!("alerts: {name}: delivering again"));
                }
                self.store.record(pending.id, Attempt::Sent { answer }, now)
            }
            Err(error) => {
                let attempts = pending.attempts + 1;
                if !std::mem::replace(&mut self.failing, true) {
                    log::warn(&format!(
                        "alerts: {name}: delivery failed ({error}); retrying with backoff, later alerts wait in order"
                    ));
                }
                if now - pending.created_at >= self.retry.give_up_after.as_millis() as i64 {
                    log::warn(&format!(
                        "alerts: {name}: giving up alert {} after {attempts} attempts",
                        pending.delivery_id
                    ));
                    self.store
                        .record(pending.id, Attempt::GaveUp { error }, now)
                } else {
                    let next_attempt_at = now + self.retry.delay(attempts).as_millis() as i64;
                    self.store.record(
                        pending.id,
                        Attempt::Retry {
                            error,
                            next_attempt_at,
                        },
                        now,
                    )
                }
            }
        };
        if let Err(error) = recorded {
            // Not recorded: the alert stays pending and is sent again (the
            // receiver drops the duplicate by its delivery id).
            log::warn(&format!(
                "alerts: {name}: cannot record a delivery: {error}"
            ));
            pause(Duration::from_secs(1));
        }
    }
}

/// Waits between polls of the outbox and out a backoff; short enough that
/// shutdown is noticed within `POLL`.
fn pause(duration: Duration) {
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(duration);
}
