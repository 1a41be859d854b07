//! The process's log output, set up once from `[log]` and `RUST_LOG`: text lines
//! (colour only on a terminal) or one JSON object per line, on stderr (the
//! journal under systemd), and whether IP addresses appear in clear ([`redact`]).
//!
//! What each line says is decided where the event happens; this module only
//! decides how lines look.

pub mod redact;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The filter when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber for `cfg`; a second call does nothing.
pub fn init(cfg: &LogConfig) {
    redact::hide_addresses(!cfg.ip_addresses);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match cfg.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // Fields at the top level (`{"message":"stream ended","bytes_in":…}`), so
        // `jq 'select(.message == "stream ended")'` works; the span that carries
        // the relay connection's number and address stays under "span".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
