//! The process's log output, set up once from `[log]` and `RUST_LOG`: text lines
//! (colour only on a terminal) or one JSON object per line, on stderr (the
//! journal under systemd), and whether IP addresses appear in clear ([`redact`]).
//! The filter stays replaceable at run time ([`control`], the admin command "Set
//! log level").
//!
//! What each line says is decided where the event happens; this module only
//! decides how lines look and which pass.

pub mod control;
pub mod redact;
pub mod span_per_poll;

use tracing_subscriber::EnvFilter;

use self::control::LogControl;

use crate::config::{LogConfig, LogFormat};

/// The filter when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber for `cfg` and returns the handle that changes
/// its filter; `None` if a subscriber was installed already (nothing changes then).
pub fn init(cfg: &LogConfig) -> Option<LogControl> {
    redact::hide_addresses(!cfg.ip_addresses);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let initial = filter.to_string();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // The two formats are different subscriber types, and so are their reload
    // handles; the closure handed to `LogControl` hides which one it is.
    match cfg.format {
        LogFormat::Text => {
            let builder = builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().ok()?;
            Some(LogControl::new(initial, move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }))
        }
        // Fields at the top level (`{"message":"stream ended","bytes_in":…}`), so
        // `jq 'select(.message == "stream ended")'` works; the span that carries
        // the relay connection's number and address stays under "span".
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().ok()?;
            Some(LogControl::new(initial, move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }))
        }
    }
}
