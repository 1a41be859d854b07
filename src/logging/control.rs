//! The running process's log filter, as the binary hands it to the service so that
//! an operator can change it (the admin command "Set log level").
//!
//! `logging::init` builds the `tracing` subscriber with a reload handle and wraps
//! it here; the service only calls [`LogControl::set`] with a filter the registry
//! checked (`core::log_filter`). Processes without one (tests, embedders) simply
//! do not offer the command.

use std::fmt;

use tracing_subscriber::EnvFilter;

use crate::core::log_filter;

type Apply = Box<dyn FnMut(EnvFilter) -> Result<(), String> + Send>;

/// The current filter and the way to replace it.
pub struct LogControl {
    current: String,
    apply: Apply,
}

impl LogControl {
    /// `current` is the filter in force; `apply` installs a new one (for a
    /// `tracing_subscriber::reload::Handle`, its `reload`).
    pub fn new(
        current: impl Into<String>,
        apply: impl FnMut(EnvFilter) -> Result<(), String> + Send + 'static,
    ) -> LogControl {
        LogControl {
            current: current.into(),
            apply: Box::new(apply),
        }
    }

    /// The filter in force.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Checks `filter` and puts it in force; on error the old one stays.
    pub fn set(&mut self, filter: &str) -> Result<(), String> {
        let parsed = log_filter::check(filter)?;
        (self.apply)(parsed)?;
        self.current = filter.trim().to_string();
        Ok(())
    }
}

impl fmt::Debug for LogControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogControl")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::Level;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::{reload, Layer};

    /// Records the level of every event that passes the filter.
    struct Seen(Arc<Mutex<Vec<Level>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(*event.metadata().level());
        }
    }

    #[test]
    fn a_new_filter_applies_to_the_next_event_and_a_bad_one_changes_nothing() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (filter, handle) = reload::Layer::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let mut control =
                LogControl::new("info", move |f| handle.reload(f).map_err(|e| e.to_string()));
            tracing::debug!("filtered out");
            tracing::info!("passes");
            control.set("debug").unwrap();
            assert_eq!(control.current(), "debug");
            tracing::debug!("passes now");
            assert!(control.set("chatty").is_err());
            assert_eq!(
                control.current(),
                "debug",
                "a refused filter changes nothing"
            );
            control.set("warn").unwrap();
            tracing::info!("filtered out again");
            tracing::warn!("passes");
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [Level::INFO, Level::DEBUG, Level::WARN]
        );
    }
}
