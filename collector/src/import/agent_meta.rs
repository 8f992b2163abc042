//! The `agent-<id>.meta.json` beside each subagent's transcript (its
//! `agentType`), read ahead on a thread of its own.
//!
//! Each is a small file of its own, so reading one cold waits for the disk
//! once per subagent, about half a millisecond on the machines measured.
//! On the parsing thread those waits added up to about 0.2 s per cold GB of
//! history (553 subagents), a tenth of the import; on the read-ahead
//! thread they held back the transcripts' reads by as much. Here they
//! overlap both (BENCHMARKS.md, "Issue 21, import: direct reads").
//!
//! The thread reads them in the import's order, a bounded number ahead,
//! and the parsing thread takes them in that order ([`AgentTypes::next`]).

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use hooktrail_shared::regular_file;
use serde::Deserialize;

/// How many subagents' types may wait, read, for the parsing thread.
const AHEAD: usize = 64;

/// The largest meta file read: larger is no meta file Claude Code wrote.
const MAX_META_BYTES: u64 = 1024 * 1024;

/// The meta file of the subagent `agent_id` whose transcript is `path`.
fn meta_path(path: &Path, agent_id: &str) -> PathBuf {
    path.with_file_name(format!("agent-{agent_id}.meta.json"))
}

/// `agentType` of the meta file beside a subagent's transcript; `None`
/// when it is missing, too large or not a regular file (a FIFO by that
/// name does not hang the import: `regular_file`).
pub(super) fn read_agent_type(path: &Path, agent_id: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default, rename = "agentType")]
        agent_type: Option<String>,
    }
    let text = regular_file::read(&meta_path(path, agent_id), MAX_META_BYTES).ok()?;
    serde_json::from_slice::<Meta>(&text).ok()?.agent_type
}

/// The reading side, run by [`Reader::run`] on its own thread.
pub(super) struct Reader {
    /// Each subagent's transcript and id, in the import's order.
    subagents: Vec<(PathBuf, String)>,
    types: Sender<Option<String>>,
}

/// The parsing side: the subagents' types, in the import's order.
pub(super) struct AgentTypes {
    types: Receiver<Option<String>>,
}

/// A reading thread for the types of `subagents` (transcript path and
/// agent id, in the order the parsing thread will ask for them).
pub(super) fn read_ahead(subagents: Vec<(PathBuf, String)>) -> (Reader, AgentTypes) {
    let (types, receiver) = crossbeam_channel::bounded(AHEAD);
    (Reader { subagents, types }, AgentTypes { types: receiver })
}

impl Reader {
    /// Reads every type, in order, until done or the parsing side is gone.
    pub(super) fn run(self) {
        for (path, agent_id) in &self.subagents {
            if self.types.send(read_agent_type(path, agent_id)).is_err() {
                return;
            }
        }
    }
}

impl AgentTypes {
    /// The type of the next subagent in the import's order (`None` also
    /// if the reading thread is gone).
    pub(super) fn next(&self) -> Option<String> {
        self.types.recv().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_in_order_and_a_bad_meta_file_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = |id: &str| dir.path().join(format!("agent-{id}.jsonl"));
        std::fs::write(
            meta_path(&transcript("a"), "a"),
            r#"{"agentType":"Explore"}"#,
        )
        .unwrap();
        std::fs::write(meta_path(&transcript("c"), "c"), "not json").unwrap();
        std::fs::write(
            meta_path(&transcript("d"), "d"),
            vec![b' '; MAX_META_BYTES as usize + 1],
        )
        .unwrap();
        std::fs::write(meta_path(&transcript("e"), "e"), r#"{"agentType":"Plan"}"#).unwrap();
        let ids = ["a", "b", "c", "d", "e"];
        let subagents = ids
            .iter()
            .map(|id| (transcript(id), (*id).to_owned()))
            .collect();
        let (reader, types) = read_ahead(subagents);
        std::thread::scope(|scope| {
            scope.spawn(move || reader.run());
            let read: Vec<Option<String>> = ids.iter().map(|_| types.next()).collect();
            assert_eq!(
                read,
                [
                    Some("Explore".to_owned()),
                    None,
                    None,
                    None,
                    Some("Plan".to_owned())
                ]
            );
            assert_eq!(types.next(), None, "past the end");
        });
    }
}
