//! The stored event: [`CommittedEvent`], one `events` row (DESIGN §6), and
//! [`Source`], the way it came in.
//!
//! Every layer speaks in these types: the sources build the row (with `seq`
//! still 0), the writer stores it and sets `seq`, the hub fans it out, and the
//! read side and the live feed turn it into JSON. They live here, below all of
//! them, so no module imports the hub or the counters just for a type.
//!
//! Hook names: code matches on [`HookEvent`] (so a misspelled name does not
//! compile), from `HookEvent::from_name`; the name itself stays a string in
//! the row, as stored, so names this version does not know (a newer Claude
//! Code's, `Invalid`) are kept and shown as they came.

#[cfg(test)]
use hooktrail_shared::envelope::HookEvent;

/// One stored event: the `events` row as the writer committed it, handed to
/// the live hub and read back by the API and the WebSocket replay.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// The row's `seq`: the cursor clients resume from.
    pub seq: i64,
    pub id: String,
    pub ts: i64,
    pub received_at: i64,
    pub machine: String,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub hook: String,
    pub tool: Option<String>,
    pub tool_use_id: Option<String>,
    pub cwd: Option<String>,
    /// `redis`, `socket`, `spool` or `import`.
    pub source: &'static str,
    /// The payload JSON text as stored.
    pub payload: String,
    /// The `prompt_id` column: the prompt the event belongs to.
    pub prompt_id: Option<String>,
    /// The `permission_mode` column.
    pub permission_mode: Option<String>,
    /// The state this event put its session in, on the live feed only (the
    /// page updates the session's badge from it; a replay reads the state
    /// from `/api/sessions` instead).
    pub state: Option<&'static str>,
    /// The `config_error` column: the emitter's config file had an error,
    /// so the event was redacted at the `metadata` level; the page shows
    /// that the config needs fixing.
    pub config_error: bool,
}

/// Where an event came from; also the `source` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Redis,
    Socket,
    Spool,
    /// Synthesized from a transcript by `hooktrail-collector import`.
    Import,
}

impl Source {
    /// Every source the daemon reads, for iteration in reports (the import
    /// is a separate process with counters of its own).
    pub const ALL: [Source; 3] = [Source::Redis, Source::Socket, Source::Spool];

    /// The `source` column value and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Redis => "redis",
            Source::Socket => "socket",
            Source::Spool => "spool",
            Source::Import => "import",
        }
    }

    /// The slot of this source's counters in `Stats`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
impl CommittedEvent {
    /// A `Stop` event of the main agent on machine `m`, for unit tests.
    pub(crate) fn for_test(seq: i64) -> CommittedEvent {
        CommittedEvent {
            seq,
            id: format!("id-{seq}"),
            ts: 0,
            received_at: 0,
            machine: "m".into(),
            session_id: None,
            agent_id: None,
            hook: HookEvent::Stop.name().into(),
            tool: None,
            tool_use_id: None,
            cwd: None,
            source: "socket",
            payload: "{}".into(),
            prompt_id: None,
            permission_mode: None,
            state: None,
            config_error: false,
        }
    }
}
