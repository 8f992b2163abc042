//! The Redis source (filled in next).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use hooktrail_shared::config::RedisConfig;

use crate::ingest::WriterQueue;
use crate::settings::Tuning;
use crate::stats::Stats;

/// The Redis reader's state.
pub struct RedisSource {
    config: RedisConfig,
    queue: WriterQueue,
    shutdown: Arc<AtomicBool>,
}

impl RedisSource {
    /// Builds the reader.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: RedisConfig,
        _group: String,
        _consumer: String,
        queue: WriterQueue,
        _stats: Arc<Stats>,
        _tuning: Tuning,
        shutdown: Arc<AtomicBool>,
        _spool_dir: PathBuf,
    ) -> RedisSource {
        RedisSource {
            config,
            queue,
            shutdown,
        }
    }

    /// Reads until shutdown.
    pub fn run(self) {
        let _ = (&self.config, &self.queue, &self.shutdown);
    }
}
