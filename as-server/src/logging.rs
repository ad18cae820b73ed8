//! The server's log: `tracing` events to stderr, filtered by `AS_LOG` (default `info`).
//!
//! actix-http reports a client's mistakes (malformed or over-long request heads, connections
//! reset or timed out, bodies left unread) at ERROR, from `actix_http::h1`: anyone could fill
//! the error log with them, and real errors would drown. Those events, recognised by their
//! text ([`is_client_message`]), are not printed as they are but logged again at DEBUG under
//! the target `as_server::client_error`. Everything else actix-http logs, its own failures
//! included ("internal error", a failing response body, a service that does not start), keeps
//! its level.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Where actix-http logs what a client did wrong.
const CLIENT_ERROR_SOURCE: &str = "actix_http::h1";

/// How the client-error events of actix-http 3 begin (`h1/dispatcher.rs`, `h1/decoder.rs`):
/// the dispatcher's `stream error: <DispatchError>` for the kinds a client causes, the
/// decoder's head-too-large report, and a write to a client that is gone.
const CLIENT_MESSAGES: &[&str] = &[
    "stream error: I/O error",
    "stream error: request parse error",
    "stream error: request did not complete within the specified timeout",
    "stream error: connection shutdown timeout",
    "stream error: handler dropped payload before reading EOF",
    "MAX_BUFFER_SIZE unprocessed data reached",
    "write zero",
];

/// Whether an actix-http event text reports a client's mistake.
pub fn is_client_message(text: &str) -> bool {
    CLIENT_MESSAGES
        .iter()
        .any(|prefix| text.starts_with(prefix))
}

/// Installs the log for `as-server serve`: `filter` (an `EnvFilter` directive string) for
/// everything, actix-http's client errors printed at DEBUG instead of their own level.
pub fn init(filter: &str) -> Result<(), String> {
    let printed = EnvFilter::try_new(filter).map_err(|e| format!("AS_LOG: {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, not in log files.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(printed.and(ClientErrors { select: false })),
        )
        .with(DemoteClientErrors.with_filter(ClientErrors { select: true }))
        .try_init()
        .map_err(|e| format!("log: {e}"))
}

/// Selects actix-http's client-error events (`select`) or everything but them.
struct ClientErrors {
    select: bool,
}

fn may_be_client_error(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with(CLIENT_ERROR_SOURCE) && *meta.level() <= Level::WARN
}

impl<S> Filter<S> for ClientErrors {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        !self.select || may_be_client_error(meta)
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let client_error =
            may_be_client_error(event.metadata()) && is_client_message(&text_of(event));
        client_error == self.select
    }

    /// A hint is a must: without one, tracing (and the `log` records of rustls, sled and
    /// actix) would be enabled up to TRACE everywhere and evaluated by the filters, which cost
    /// 5–10 % of the server's CPU per request when it was missing.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.select {
            LevelFilter::WARN
        } else {
            LevelFilter::TRACE
        })
    }
}

/// Logs actix-http's client-error events again at DEBUG (see the module doc).
struct DemoteClientErrors;

impl<S: Subscriber> Layer<S> for DemoteClientErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let text = text_of(event);
        tracing::debug!(target: "as_server::client_error", source = event.metadata().target(), "{text}");
    }
}

/// The fields of an event as one line of text, its message first.
fn text_of(event: &Event<'_>) -> String {
    let mut text = TextOf(String::new());
    event.record(&mut text);
    text.0
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_mistakes_are_demoted() {
        for client in [
            "stream error: request parse error: invalid Header provided",
            "stream error: I/O error: connection reset by peer",
            "stream error: request did not complete within the specified timeout",
            "MAX_BUFFER_SIZE unprocessed data reached, closing",
            "write zero; closing",
        ] {
            assert!(is_client_message(client), "{client}");
        }
        for server in [
            "stream error: internal error",
            "stream error: body error: broken pipe",
            "stream error: service error",
            "Internal server error: unexpected payload chunk",
            "Response payload stream error: x",
            "Initialization of HTTP service error: x",
        ] {
            assert!(!is_client_message(server), "{server}");
        }
    }
}
