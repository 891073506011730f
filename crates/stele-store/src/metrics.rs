//! Store metrics, exposed in Prometheus form by the server.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Counters and histograms the writer updates.
pub struct StoreMetrics {
    /// Entries appended (acknowledged durable).
    pub appended: Counter,
    /// Group commits.
    pub commits: Counter,
    /// Entries per group commit.
    pub batch_size: Histogram,
    /// Seconds spent writing and fsyncing each group commit.
    pub fsync_seconds: Histogram,
    /// Current durable tree size.
    pub tree_size: Gauge,
    /// Checkpoints published.
    pub checkpoints: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            appended: Counter::default(),
            commits: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            tree_size: Gauge::default(),
            checkpoints: Counter::default(),
        }
    }
}

impl StoreMetrics {
    pub(crate) fn observe_commit(&self, entries: usize, took: Duration) {
        self.appended.inc_by(entries as u64);
        self.commits.inc();
        self.batch_size.observe(entries as f64);
        self.fsync_seconds.observe(took.as_secs_f64());
    }

    /// Registers every metric under the `stele_store` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("stele_store");
        r.register(
            "appended_entries",
            "Entries appended and acknowledged durable",
            self.appended.clone(),
        );
        r.register(
            "group_commits",
            "Group commits (one write and fdatasync each)",
            self.commits.clone(),
        );
        r.register(
            "group_commit_entries",
            "Entries per group commit",
            self.batch_size.clone(),
        );
        r.register(
            "fsync_seconds",
            "Time to write and fdatasync one group commit",
            self.fsync_seconds.clone(),
        );
        r.register("tree_size", "Durable tree size", self.tree_size.clone());
        r.register(
            "checkpoints_published",
            "Signed checkpoints published",
            self.checkpoints.clone(),
        );
    }
}
