//! Prometheus metrics, served at `GET /metrics` (OpenMetrics text).
//!
//! `witness_add_checkpoint_total{code}` (the answer's status code), the
//! `witness_add_checkpoint_duration_seconds` histogram, `witness_logs`,
//! `witness_evidence_files`, and for the auditing mode `witness_audited_entries` and
//! `witness_audit_refusals` (checkpoints refused for breaking the directory's rules). No label carries request data, so requests cannot add series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

/// The witness's metrics.
pub struct Metrics {
    registry: Registry,
    answers: Family<CodeLabels, Counter>,
    duration: Histogram,
    logs: Gauge,
    evidence: Gauge,
    audited: Gauge,
    audit_refusals: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let answers = Family::<CodeLabels, Counter>::default();
        registry.register(
            "witness_add_checkpoint",
            "add-checkpoint answers by status code",
            answers.clone(),
        );
        // 100 µs .. about 3 s.
        let duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "witness_add_checkpoint_duration_seconds",
            "time to answer add-checkpoint, the durable write included",
            duration.clone(),
        );
        let logs = Gauge::default();
        registry.register("witness_logs", "logs this witness witnesses", logs.clone());
        let evidence = Gauge::default();
        registry.register(
            "witness_evidence_files",
            "evidence files of inconsistent checkpoints kept",
            evidence.clone(),
        );
        let audited = Gauge::default();
        registry.register(
            "witness_audited_entries",
            "log entries the auditing mode checked since the start",
            audited.clone(),
        );
        let audit_refusals = Gauge::default();
        registry.register(
            "witness_audit_refusals",
            "checkpoints refused since the start for breaking the directory's rules",
            audit_refusals.clone(),
        );
        Metrics {
            registry,
            answers,
            duration,
            logs,
            evidence,
            audited,
            audit_refusals,
        }
    }

    /// Counts one add-checkpoint answer.
    pub fn answered(&self, code: u16, seconds: f64) {
        self.answers.get_or_create(&CodeLabels { code }).inc();
        self.duration.observe(seconds);
    }

    /// The text exposition, with the gauges set from `witness`.
    pub fn encode(&self, witness: &crate::witness::Witness) -> String {
        let set = |gauge: &Gauge, value: u64| gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        set(&self.logs, witness.log_count() as u64);
        set(&self.evidence, witness.evidence_count());
        set(&self.audited, witness.audited_entries());
        set(&self.audit_refusals, witness.audit_failures());
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
