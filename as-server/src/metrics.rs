//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! `as_http_requests_total{route,method,status}`, `as_http_request_duration_seconds{route}`,
//! `as_log_size`, `as_sequencer_batch_size`, `as_sequencer_queue_depth`, `as_storage_unavailable`
//! (1 while writes are refused because of a storage fault, [`crate::resync`]). Labels carry the
//! route pattern (`/v1/identities/{identity}`, or `unmatched`), never the raw path, and a
//! method from a fixed set ([`MethodLabel`]), never the raw method, so untrusted requests
//! cannot blow up the number of series; no label ever carries a secret.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `method` label: the methods the API uses, and `other` for every other one, so that a
/// client cannot add series by sending new methods.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum MethodLabel {
    /// GET.
    Get,
    /// POST.
    Post,
    /// Any other method (answered 405 without reaching a handler).
    Other,
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

impl MethodLabel {
    /// The label of `method`.
    pub fn of(method: &actix_web::http::Method) -> MethodLabel {
        match *method {
            actix_web::http::Method::GET => MethodLabel::Get,
            actix_web::http::Method::POST => MethodLabel::Post,
            _ => MethodLabel::Other,
        }
    }

    /// Its text, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Get => "GET",
            MethodLabel::Post => "POST",
            MethodLabel::Other => "other",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: MethodLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    log_size: Gauge<u64, AtomicU64>,
    batch_size: Histogram,
    queue_depth: Gauge<u64, AtomicU64>,
    storage_unavailable: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("as");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let log_size = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "log_size",
            "Entries in the transparency log",
            log_size.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "sequencer_batch_size",
            "Entries per group commit",
            batch_size.clone(),
        );
        let queue_depth = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "sequencer_queue_depth",
            "Actions waiting for the sequencer",
            queue_depth.clone(),
        );
        let storage_unavailable = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "storage_unavailable",
            "1 while writes are refused because the data disk does not take them",
            storage_unavailable.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            log_size,
            batch_size,
            queue_depth,
            storage_unavailable,
        }
    }

    /// Counts one answered request.
    pub fn record_request(&self, route: &str, method: MethodLabel, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Records one group commit of `entries`, after which the log has `log_size` entries.
    pub fn record_batch(&self, entries: usize, log_size: u64) {
        self.batch_size.observe(entries as f64);
        self.log_size.set(log_size);
    }

    /// Sets the log size (at start).
    pub fn set_log_size(&self, log_size: u64) {
        self.log_size.set(log_size);
    }

    /// Sets whether writes are refused because of a storage fault.
    pub fn set_storage_unavailable(&self, unavailable: bool) {
        self.storage_unavailable.set(u64::from(unavailable));
    }

    /// The text exposition, with the queue depth read now.
    pub fn render(&self, queue_depth: usize) -> String {
        self.queue_depth.set(queue_depth as u64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.record_request("/v1/ca", MethodLabel::Get, 200, 0.001);
        metrics.record_batch(7, 42);
        let text = metrics.render(3);
        assert!(
            text.contains(r#"as_http_requests_total{route="/v1/ca",method="GET",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("as_log_size 42"), "{text}");
        assert!(text.contains("as_sequencer_queue_depth 3"), "{text}");
        assert!(text.contains("as_sequencer_batch_size_count 1"), "{text}");
        assert!(text.contains("as_storage_unavailable 0"), "{text}");
        metrics.set_storage_unavailable(true);
        assert!(metrics.render(0).contains("as_storage_unavailable 1"));
    }
}
