//! The server's log: `tracing` events to stderr, filtered by `AS_LOG` (default `info`).
//!
//! actix-http reports client mistakes (malformed request heads, heads over its size limit,
//! connections reset or timed out) at ERROR, from `actix_http::h1`, where only the client is
//! at fault: anyone could fill the error log, and real errors would drown. Those events are
//! logged again here at DEBUG, under the target `as_server::client_error`, and never at
//! ERROR. Everything actix-http logs at that target is of this kind: it parses and answers the
//! client's bytes, while the server's own failures are logged by the server.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Where actix-http logs what a client did wrong.
const CLIENT_ERROR_SOURCE: &str = "actix_http::h1";

/// Installs the log for `as-server serve`: `filter` (an `EnvFilter` directive string) for
/// everything but actix-http's client errors, which go out at DEBUG.
pub fn init(filter: &str) -> Result<(), String> {
    let directives = format!("{filter},{CLIENT_ERROR_SOURCE}=off");
    let printed = EnvFilter::try_new(&directives).map_err(|e| format!("AS_LOG: {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, not in log files.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(printed),
        )
        .with(
            DemoteClientErrors
                .with_filter(Targets::new().with_target(CLIENT_ERROR_SOURCE, Level::WARN)),
        )
        .try_init()
        .map_err(|e| format!("log: {e}"))
}

/// Logs actix-http's client-error events again at DEBUG (see the module doc).
struct DemoteClientErrors;

impl<S: Subscriber> Layer<S> for DemoteClientErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = TextOf(String::new());
        event.record(&mut text);
        tracing::debug!(target: "as_server::client_error", source = event.metadata().target(), "{}", text.0);
    }
}

/// The fields of an event as one line of text.
struct TextOf(String);

impl Visit for TextOf {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}
