//! The live hub: hands each committed event to the WebSocket clients.
//!
//! **Invariant:** [`Hub::publish`] never blocks the writer. A client that
//! cannot keep up has a bounded queue (in events and in bytes,
//! [`MAX_QUEUED_BYTES`]); when it is full the hub drops the queue, and the
//! client's thread reads on from SQLite from its last sent `seq` and
//! subscribes again (`serve::ws`).
//!
//! How: each subscriber owns a bounded `crossbeam` channel. `publish` cuts
//! the committed rows into chunks of at most [`CHUNK_EVENTS`] events and
//! [`CHUNK_COST`] bytes, shared by every subscriber, takes a short lock on the
//! subscriber list and `try_send`s each chunk (the writer's work per commit
//! grows with chunks times subscribers, not events times subscribers). On a
//! full queue it marks the subscriber as overflowed and drops its sender;
//! the client's thread sees it and catches up from SQLite (`serve::ws`).
//! A subscriber can also ask to be woken (a
//! `mio::Waker`, one `eventfd` write) so it can sleep in `poll` on its socket
//! and its queue together; wake-ups are coalesced with a flag.
//!
//! **Invariant:** subscribers get every committed `seq` once, in order,
//! whoever committed it. The writer publishes what it stored; rows another
//! process committed (an import writes the same database) reach the hub
//! through the backfill thread (`serve::backfill`), which reads them from
//! SQLite. With a backfill attached ([`Hub::attach_backfill`]), a writer's
//! batch that does not follow the last delivered `seq` is not delivered but
//! left to the backfill, which reads the gap and the batch in `seq` order; so
//! a client's cursor never passes a row it has not been sent.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::CommittedEvent;

/// One event as queued for subscribers: shared by all of them, so the JSON
/// text is built once (by the first client thread that needs it), not once
/// per client.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    /// The committed row.
    pub(crate) event: Arc<CommittedEvent>,
    /// Its JSON object text, built on first use.
    pub(crate) json: std::sync::OnceLock<String>,
}

impl LiveEvent {
    /// The event's JSON object text, built by the first caller.
    pub(crate) fn json(&self) -> &str {
        self.json.get_or_init(|| {
            let mut text = String::with_capacity(self.event.payload.len() + 256);
            crate::serve::json::push_event_json(&mut text, &self.event);
            text
        })
    }
}

/// Consecutive committed events, queued to every subscriber as one unit.
#[derive(Debug)]
pub(crate) struct LiveChunk {
    /// The events, in `seq` order.
    pub(crate) events: Vec<LiveEvent>,
    /// What the chunk costs in memory ([`queued_cost`] of its events).
    cost: usize,
    /// The `events` frame of the whole chunk ([`LiveChunk::frame`]).
    frame: OnceLock<Arc<Vec<u8>>>,
}

impl LiveChunk {
    /// The first and last `seq` of the chunk.
    pub(crate) fn seqs(&self) -> (i64, i64) {
        let seq = |event: Option<&LiveEvent>| event.map_or(0, |live| live.event.seq);
        (seq(self.events.first()), seq(self.events.last()))
    }

    /// The WebSocket text frame (unmasked, as a server sends it) of
    /// `{"type":"events","cursor":LAST,"events":[...]}` with every event,
    /// built by the first client that asks and written as is by the others.
    pub(crate) fn frame(&self) -> Arc<Vec<u8>> {
        self.frame
            .get_or_init(|| {
                let bytes: usize = self.events.iter().map(|live| live.json().len() + 1).sum();
                let mut text = String::with_capacity(bytes + 64);
                text.push_str(&format!(
                    "{{\"type\":\"events\",\"cursor\":{},\"events\":[",
                    self.seqs().1
                ));
                for (index, live) in self.events.iter().enumerate() {
                    if index > 0 {
                        text.push(',');
                    }
                    text.push_str(live.json());
                }
                text.push_str("]}");
                Arc::new(text_frame(text.as_bytes()))
            })
            .clone()
    }
}

/// One final, unmasked WebSocket text frame of `payload` (RFC 6455 5.2).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.extend_from_slice(&text_frame_header(payload.len()));
    frame.extend_from_slice(payload);
    frame
}

/// The header of a final, unmasked WebSocket text frame of `length` bytes:
/// written before a payload sent as is, it makes the frame without a copy.
pub(crate) fn text_frame_header(length: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(10);
    header.push(0x81);
    match length {
        0..=125 => header.push(length as u8),
        126..=0xffff => {
            header.push(126);
            header.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    header
}

/// The most events in one [`LiveChunk`]: a live frame's worth.
pub(crate) const CHUNK_EVENTS: usize = 500;

/// The most bytes ([`queued_cost`]) in one [`LiveChunk`] of more than one
/// event: a chunk is sent as one frame, and the byte budget of a queue is
/// checked per chunk.
pub(crate) const CHUNK_COST: usize = 1 << 20;

/// The default number of events a subscriber may have queued before its
/// queue is dropped (its client reads on from SQLite).
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 131_072;

/// The most bytes of events one subscriber may have queued before its queue
/// is dropped (its client reads on from SQLite). Counting events alone let stalled clients hold
/// 8,192 events of up to 1 MiB each (2.8 GB RSS was seen). The chunks are
/// shared between subscribers and every queue holds the newest chunks from
/// its client's position on, so this also bounds what the hub keeps alive
/// for all of them together (`hostile`'s stalled clients: peak RSS 91 MB).
/// 16 MB overflowed the queue of every client that fell a few seconds
/// behind a burst; each overflow costs that client a read from SQLite.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// What one queued event costs in memory: its payload, the JSON text built
/// from it once for every client, and the other columns.
fn queued_cost(event: &CommittedEvent) -> usize {
    2 * event.payload.len() + 512
}

/// The hub's side of one subscriber.
struct Slot {
    /// Identifies the slot so the subscription can remove itself on drop.
    id: u64,
    /// Where `publish` puts chunks; dropped when the queue overflows.
    sender: Sender<Arc<LiveChunk>>,
    /// The most events this subscriber may have queued.
    capacity: usize,
    /// Events queued and not yet received.
    queued_events: Arc<AtomicUsize>,
    /// Shared with the subscription: set when the queue overflowed.
    overflowed: Arc<AtomicBool>,
    /// Wakes the subscriber's thread, when it sleeps in `poll`.
    waker: Option<Arc<mio::Waker>>,
    /// Set by `publish` when a wake is pending, cleared by the subscriber
    /// before it drains: coalesces wake-ups to at most one per drain.
    wake_pending: Arc<AtomicBool>,
    /// Bytes of events queued and not yet received ([`queued_cost`]).
    queued_bytes: Arc<AtomicUsize>,
}

/// Fan-out point between the writer and the WebSocket clients.
#[derive(Default)]
pub struct Hub {
    /// Live subscribers and the delivered position. Held only for
    /// `try_send`s and list edits.
    inner: Mutex<Inner>,
    /// Source of slot ids.
    next_id: AtomicU64,
    /// Highest `seq` delivered so far (a copy of `Inner::delivered`, read
    /// without the lock for health, tests and the backfill).
    last_published_seq: AtomicI64,
    /// Subscribers dropped because their queue was full (their clients
    /// caught up from SQLite).
    dropped_slow: AtomicU64,
    /// Wakes the backfill when the writer's batch left a gap; unset (no
    /// backfill) in tests that publish by hand.
    backfill: OnceLock<Sender<()>>,
}

/// What the hub's lock guards.
#[derive(Default)]
struct Inner {
    /// Live subscribers.
    slots: Vec<Slot>,
    /// Every `seq` up to this one has been delivered (or passed while no
    /// one listened): a batch is delivered only from the next one on.
    delivered: i64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Hub")
            .field("subscribers", &self.subscriber_count())
            .field("last_published_seq", &self.last_published_seq())
            .finish()
    }
}

/// A subscriber's end: events in `seq` order until it is dropped.
pub(crate) struct Subscription {
    /// Which slot to remove on drop.
    id: u64,
    /// The hub, to unsubscribe on drop.
    hub: Arc<Hub>,
    /// Chunks published since the subscription began.
    receiver: Receiver<Arc<LiveChunk>>,
    /// Events queued and not yet received, shared with the slot.
    queued_events: Arc<AtomicUsize>,
    /// Set when the hub dropped this subscriber for being too slow.
    overflowed: Arc<AtomicBool>,
    /// Cleared before each drain so the next publish wakes the thread again.
    wake_pending: Arc<AtomicBool>,
    /// Shared with the slot: bytes queued, lowered by [`Subscription::try_recv`].
    queued_bytes: Arc<AtomicUsize>,
}

impl Subscription {
    /// Whether the hub dropped this subscriber because its queue was full.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// The next queued chunk, if any; what it cost leaves the budgets.
    pub(crate) fn try_recv(&self) -> Option<Arc<LiveChunk>> {
        let chunk = self.receiver.try_recv().ok()?;
        self.queued_bytes.fetch_sub(chunk.cost, Ordering::AcqRel);
        self.queued_events
            .fetch_sub(chunk.events.len(), Ordering::AcqRel);
        Some(chunk)
    }

    /// Whether a chunk is waiting.
    pub(crate) fn has_queued(&self) -> bool {
        !self.receiver.is_empty()
    }

    /// Call before draining the receiver: re-arms the wake-up.
    pub(crate) fn rearm(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.lock().slots.retain(|slot| slot.id != self.id);
    }
}

impl Hub {
    /// A hub with no clients.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Subscribes with a queue of `capacity` events; `waker` (optional) is
    /// woken after each publish that queued something.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        capacity: usize,
        waker: Option<Arc<mio::Waker>>,
    ) -> Subscription {
        // Unbounded as a channel (it allocates as it fills): `publish`
        // bounds it by the events and bytes queued.
        let (sender, receiver) = crossbeam_channel::unbounded();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let overflowed = Arc::new(AtomicBool::new(false));
        let wake_pending = Arc::new(AtomicBool::new(false));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let queued_events = Arc::new(AtomicUsize::new(0));
        let slot = Slot {
            capacity: capacity.max(1),
            queued_events: queued_events.clone(),
            queued_bytes: queued_bytes.clone(),
            id,
            sender,
            overflowed: overflowed.clone(),
            waker,
            wake_pending: wake_pending.clone(),
        };
        self.lock().slots.push(slot);
        Subscription {
            id,
            hub: self.clone(),
            receiver,
            queued_events,
            overflowed,
            wake_pending,
            queued_bytes,
        }
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Makes the hub deliver in `seq` order only, with a backfill thread
    /// filling the gaps that other processes' commits leave; `newest` is
    /// the database's newest `seq` now (delivered or not, it is history).
    /// Returns what wakes the backfill.
    pub(crate) fn attach_backfill(&self, newest: i64) -> Receiver<()> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let mut inner = self.lock();
        inner.delivered = inner.delivered.max(newest);
        self.last_published_seq
            .fetch_max(inner.delivered, Ordering::Relaxed);
        let _ = self.backfill.set(sender);
        receiver
    }

    /// The backfill's rows, read from the database in `seq` order: those
    /// after the delivered position are delivered, and the position moves
    /// to `covered` (the page's end), past any `seq` that no row holds.
    pub(crate) fn publish_backfill(&self, events: &[Arc<CommittedEvent>], covered: i64) {
        let mut inner = self.lock();
        let fresh = events.partition_point(|event| event.seq <= inner.delivered);
        self.deliver(&mut inner, &events[fresh..]);
        inner.delivered = inner.delivered.max(covered);
        self.last_published_seq
            .fetch_max(inner.delivered, Ordering::Relaxed);
    }

    /// With no subscriber there is nobody to backfill for: the delivered
    /// position moves to `newest` and this returns true. A subscriber that
    /// comes later replays from SQLite what came before it.
    pub(crate) fn skip_unwatched(&self, newest: i64) -> bool {
        let mut inner = self.lock();
        if !inner.slots.is_empty() {
            return false;
        }
        inner.delivered = inner.delivered.max(newest);
        self.last_published_seq
            .fetch_max(inner.delivered, Ordering::Relaxed);
        true
    }

    /// Highest `seq` published so far (0: none).
    pub fn last_published_seq(&self) -> i64 {
        self.last_published_seq.load(Ordering::Relaxed)
    }

    /// Subscribers dropped so far for being too slow (each client then
    /// reads on from SQLite).
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }

    /// Called by the writer after each commit, with the newly stored rows in
    /// `seq` order. Must return at once: it never waits on a subscriber.
    /// Rows already delivered (by the backfill) are passed over; with a
    /// backfill attached, a batch that leaves a gap after the delivered
    /// position wakes it instead of being delivered (see the module doc).
    pub fn publish(&self, events: &[Arc<CommittedEvent>]) {
        let mut inner = self.lock();
        let fresh = &events[events.partition_point(|event| event.seq <= inner.delivered)..];
        let Some(first) = fresh.first() else { return };
        if let Some(backfill) = self.backfill.get() {
            if !inner.slots.is_empty() && first.seq != inner.delivered + 1 {
                let _ = backfill.try_send(());
                return;
            }
        }
        self.deliver(&mut inner, fresh);
    }

    /// Queues `events` (fresh, in `seq` order) for every subscriber and
    /// moves the delivered position past them.
    fn deliver(&self, inner: &mut Inner, events: &[Arc<CommittedEvent>]) {
        let Some(last) = events.last() else { return };
        inner.delivered = inner.delivered.max(last.seq);
        self.last_published_seq
            .fetch_max(inner.delivered, Ordering::Relaxed);
        let slots = &mut inner.slots;
        if slots.is_empty() {
            return;
        }
        let chunks = chunks_of(events);
        slots.retain(|slot| {
            for chunk in &chunks {
                let queued = slot.queued_events.load(Ordering::Acquire);
                let bytes = slot.queued_bytes.load(Ordering::Acquire);
                // One chunk larger than the budget still goes through an
                // empty queue.
                let over = queued + chunk.events.len() > slot.capacity
                    || bytes + chunk.cost > MAX_QUEUED_BYTES;
                if queued > 0 && over {
                    slot.overflowed.store(true, Ordering::Release);
                    self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    wake(slot);
                    return false;
                }
                slot.queued_bytes.fetch_add(chunk.cost, Ordering::AcqRel);
                slot.queued_events
                    .fetch_add(chunk.events.len(), Ordering::AcqRel);
                match slot.sender.try_send(chunk.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        slot.overflowed.store(true, Ordering::Release);
                        self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                        wake(slot);
                        return false;
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            wake(slot);
            true
        });
    }
}

/// `events` cut into shared chunks of at most [`CHUNK_EVENTS`] events and
/// [`CHUNK_COST`] bytes (one event larger than that is a chunk alone).
fn chunks_of(events: &[Arc<CommittedEvent>]) -> Vec<Arc<LiveChunk>> {
    let mut chunks = Vec::new();
    let mut current: Vec<LiveEvent> = Vec::new();
    let mut cost = 0;
    for event in events {
        let event_cost = queued_cost(event);
        if !current.is_empty() && (current.len() >= CHUNK_EVENTS || cost + event_cost > CHUNK_COST)
        {
            chunks.push(Arc::new(LiveChunk {
                events: std::mem::take(&mut current),
                cost,
                frame: OnceLock::new(),
            }));
            cost = 0;
        }
        cost += event_cost;
        current.push(LiveEvent {
            event: event.clone(),
            json: OnceLock::new(),
        });
    }
    if !current.is_empty() {
        chunks.push(Arc::new(LiveChunk {
            events: current,
            cost,
            frame: OnceLock::new(),
        }));
    }
    chunks
}

fn wake(slot: &Slot) {
    if let Some(waker) = &slot.waker {
        if !slot.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> Arc<CommittedEvent> {
        Arc::new(CommittedEvent::for_test(seq))
    }

    /// The seqs queued for `client`, received.
    fn received(client: &Subscription) -> Vec<i64> {
        std::iter::from_fn(|| client.try_recv())
            .flat_map(|chunk| {
                chunk
                    .events
                    .iter()
                    .map(|live| live.event.seq)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn with_a_backfill_a_batch_after_a_gap_waits_for_the_gap_and_nothing_goes_twice() {
        let hub = Hub::new();
        let wake = hub.attach_backfill(10);
        let client = hub.subscribe(100, None);
        let seqs = received;
        hub.publish(&[event(11)]);
        // 12 and 13 came from another process; the writer's 14 must wait.
        hub.publish(&[event(14)]);
        assert_eq!(seqs(&client), [11]);
        assert!(wake.try_recv().is_ok(), "the backfill was woken");
        hub.publish_backfill(&[event(12), event(13), event(14)], 14);
        hub.publish(&[event(14), event(15)]);
        assert_eq!(seqs(&client), [12, 13, 14, 15]);
        // Holes (rows deleted since) are passed by.
        hub.publish_backfill(&[event(18)], 20);
        hub.publish(&[event(21)]);
        assert_eq!(seqs(&client), [18, 21]);
        assert_eq!(hub.last_published_seq(), 21);
        drop(client);
        assert!(hub.skip_unwatched(30));
        assert_eq!(hub.last_published_seq(), 30);
    }

    #[test]
    fn a_full_queue_drops_the_subscriber_without_blocking_publish() {
        let hub = Hub::new();
        let slow = hub.subscribe(4, None);
        let fast = hub.subscribe(100, None);
        for seq in 1..=10 {
            hub.publish(&[event(seq)]);
        }
        assert!(slow.overflowed());
        assert!(!fast.overflowed());
        assert_eq!(received(&slow), [1, 2, 3, 4]);
        assert_eq!(received(&fast), (1..=10).collect::<Vec<_>>());
        assert_eq!(hub.subscriber_count(), 1);
        drop(fast);
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[test]
    fn a_commit_is_queued_as_shared_chunks_of_a_frame_each() {
        let hub = Hub::new();
        let first = hub.subscribe(DEFAULT_QUEUE_CAPACITY, None);
        let second = hub.subscribe(DEFAULT_QUEUE_CAPACITY, None);
        let batch: Vec<_> = (1..=1200).map(event).collect();
        hub.publish(&batch);
        let chunks: Vec<_> = std::iter::from_fn(|| first.try_recv()).collect();
        assert_eq!(
            chunks.iter().map(|chunk| chunk.seqs()).collect::<Vec<_>>(),
            [(1, 500), (501, 1000), (1001, 1200)]
        );
        let other: Vec<_> = std::iter::from_fn(|| second.try_recv()).collect();
        assert!(Arc::ptr_eq(&chunks[0], &other[0]), "one chunk for both");
        let frame = chunks[2].frame();
        // A final text frame, unmasked, its length in 2 or 8 bytes.
        assert_eq!(frame[0], 0x81);
        let (length, start) = match frame[1] {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                10,
            ),
            length => (length as usize, 2),
        };
        assert_eq!(length, frame.len() - start);
        let parsed: serde_json::Value = serde_json::from_slice(&frame[start..]).unwrap();
        assert_eq!(parsed["cursor"], 1200);
        assert_eq!(parsed["events"].as_array().unwrap().len(), 200);
        assert_eq!(parsed["events"][0]["seq"], 1001);
        // A queue counts events, not chunks: 8,192 events and it is full.
        let third = hub.subscribe(1000, None);
        hub.publish(&(1201..=2000).map(event).collect::<Vec<_>>());
        hub.publish(&(2001..=2300).map(event).collect::<Vec<_>>());
        assert!(third.overflowed(), "1,100 events queued against 1,000");
    }
}
