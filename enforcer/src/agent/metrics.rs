//! The agent's Prometheus metrics (OpenMetrics text at `GET /metrics` on `--metrics-address`):
//! revisions applied and rejected, time from a change seen to its enforcement, swap duration,
//! and what is in force.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Bucket bounds in seconds: from a millisecond to a minute.
const SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Every metric, cheap to clone (the values are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub applied: Counter,
    pub rejected: Counter,
    pub unchanged: Counter,
    pub change_to_enforced: Histogram,
    pub swap_seconds: Histogram,
    pub compile_seconds: Histogram,
    pub revision: Gauge,
    pub generation: Gauge,
    pub policy_entries: Gauge,
    pub endpoints: Gauge,
    pub last_applied_timestamp: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("policyd");
        let applied = Counter::default();
        let rejected = Counter::default();
        let unchanged = Counter::default();
        let hist = || Histogram::new(SECONDS);
        let change_to_enforced = hist();
        let swap_seconds = hist();
        let compile_seconds = hist();
        let revision = Gauge::default();
        let generation = Gauge::default();
        let policy_entries = Gauge::default();
        let endpoints = Gauge::default();
        let last_applied_timestamp = Gauge::<f64, AtomicU64>::default();
        r.register(
            "revisions_applied",
            "Revisions of the tree compiled and swapped into the datapath",
            applied.clone(),
        );
        r.register(
            "revisions_rejected",
            "Revisions refused because the tree has errors (the one in force stays)",
            rejected.clone(),
        );
        r.register(
            "revisions_unchanged",
            "Changes seen that left the tree as it was",
            unchanged.clone(),
        );
        r.register(
            "revision_change_to_enforced_seconds",
            "From a change of the source seen to its revision enforced in the kernel",
            change_to_enforced.clone(),
        );
        r.register(
            "swap_duration_seconds",
            "Writing a generation's maps and flipping to it",
            swap_seconds.clone(),
        );
        r.register(
            "compile_duration_seconds",
            "Checking and compiling a revision",
            compile_seconds.clone(),
        );
        r.register(
            "revision",
            "Sequence number of the revision in force (0: none yet)",
            revision.clone(),
        );
        r.register(
            "generation",
            "The datapath generation in force",
            generation.clone(),
        );
        r.register(
            "policy_entries",
            "Policy map entries in the generation in force",
            policy_entries.clone(),
        );
        r.register(
            "endpoints",
            "Endpoints registered on this node",
            endpoints.clone(),
        );
        r.register(
            "last_applied_timestamp_seconds",
            "When the revision in force was applied (Unix time)",
            last_applied_timestamp.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            applied,
            rejected,
            unchanged,
            change_to_enforced,
            swap_seconds,
            compile_seconds,
            revision,
            generation,
            policy_entries,
            endpoints,
            last_applied_timestamp,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Serves `GET /metrics` on `address` from a thread of its own.
    pub fn serve(&self, address: SocketAddr) -> Result<(), String> {
        let server = tiny_http::Server::http(address)
            .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
        let metrics = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    let response = if request.url() == "/metrics" {
                        let header = tiny_http::Header::from_bytes(
                            "Content-Type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .ok();
                        let mut r = tiny_http::Response::from_string(metrics.render());
                        if let Some(h) = header {
                            r = r.with_header(h);
                        }
                        r
                    } else {
                        tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let m = Metrics::new();
        m.applied.inc();
        m.swap_seconds.observe(0.02);
        m.policy_entries.set(42);
        let text = m.render();
        for name in [
            "policyd_revisions_applied_total 1",
            "policyd_revisions_rejected_total 0",
            "policyd_swap_duration_seconds_count 1",
            "policyd_revision_change_to_enforced_seconds_count 0",
            "policyd_policy_entries 42",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
