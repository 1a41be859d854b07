//! Which log filters an operator may switch to at run time (the admin command
//! "Set log level"): the `RUST_LOG` syntax of `tracing_subscriber::EnvFilter`,
//! checked before anything changes.
//!
//! Pure: applying the filter is the binary's (see `logging::control`).
//!
//! One rule on top of `EnvFilter`'s: every directive names a level. A bare word
//! such as `verbose` is valid `RUST_LOG` (it enables target `verbose` and turns
//! everything else off), so a typo would silence the log; we refuse it instead.

use tracing_subscriber::EnvFilter;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 512;

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `filter` parsed, or a one-line reason it is refused.
///
/// ```
/// use dsps::core::log_filter::check;
/// assert!(check("info").is_ok());
/// assert!(check("dsps=debug,info").is_ok());
/// assert!(check("verbose").is_err());
/// ```
pub fn check(filter: &str) -> Result<EnvFilter, String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Err("empty log filter".into());
    }
    if filter.len() > MAX_FILTER_BYTES {
        return Err(format!("log filter longer than {MAX_FILTER_BYTES} bytes"));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "log directive {directive:?} names no level; use one of {} or target=level",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_levels_pass() {
        for ok in [
            "info",
            "WARN",
            " debug ",
            "dsps=trace,info",
            "dsps::relay=debug,warn",
            "off",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn typos_and_oversized_filters_are_refused_with_a_reason() {
        let err = check("verbose").unwrap_err();
        assert!(err.contains("\"verbose\" names no level"), "{err}");
        assert!(check("dsps=loud").is_err());
        assert!(check("").is_err());
        assert!(check("info,").is_err(), "an empty directive names no level");
        assert!(check(&"a=info,".repeat(100))
            .unwrap_err()
            .contains("longer than"));
    }
}
