//! glibc settings under which the memory of departed peers can go back.
//!
//! Two of glibc's defaults keep it after a crowd of peers has come and gone:
//! - an arena per thread that allocates, each with its own survivors scattered
//!   among its holes;
//! - a per-thread cache holding up to 7 freed chunks of every small size out of
//!   `malloc_trim`'s reach, each pinning its page.
//!
//! Measured with 10 000 idle peers that came and left (`scripts/bench.sh --case
//! memory`), RSS over a warm process: +5.7 MiB with the defaults, +4.9 with one
//! arena, +1.7 with one arena and a cache of one chunk per size, +1.2 to +1.3
//! with one arena and no cache. The data path allocates a few times per 256 KiB
//! read, so the lock the workers then share and the cache's absence are not felt
//! (1→16, 1→64 and stream setups the same within noise, in alternating runs).
//!
//! glibc reads these settings only at start, from `GLIBC_TUNABLES`, so the server
//! runs itself again once with them added. Settings an operator put in
//! `GLIBC_TUNABLES` are kept as they are.

use std::ffi::OsString;

/// The settings dsps adds to `GLIBC_TUNABLES` when they are not named there.
pub const SETTINGS: [(&str, &str); 2] = [
    ("glibc.malloc.arena_max", "1"),
    ("glibc.malloc.tcache_count", "0"),
];

/// Set in the re-executed process: a system that drops `GLIBC_TUNABLES` (a
/// program with file capabilities, say) must not make dsps restart forever.
const RESTARTED: &str = "DSPS_ALLOCATOR_RESTARTED";

/// What `GLIBC_TUNABLES` should become, or `None` if it names every setting
/// already (with our value or the operator's).
pub fn wanted(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or("");
    let present: Vec<&str> = current.split(':').filter(|kv| !kv.is_empty()).collect();
    let named = |key: &str| present.iter().any(|kv| kv.split('=').next() == Some(key));
    let missing: Vec<String> = SETTINGS
        .iter()
        .filter(|(key, _)| !named(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut all: Vec<String> = present.iter().map(|kv| kv.to_string()).collect();
    all.extend(missing);
    Some(all.join(":"))
}

/// How the allocator came to be set up, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum Tuning {
    /// `GLIBC_TUNABLES` names every setting (this value).
    InPlace(String),
    /// The settings could not be applied; the defaults are in force.
    Unapplied(String),
    /// Not glibc: nothing to do.
    NotGlibc,
}

/// Called first in server mode, while the process has one thread: re-executes
/// the binary with the settings added when they are missing. Returns only when
/// they are in place, or when they cannot be.
pub fn apply() -> Tuning {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Tuning::NotGlibc;
    }
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let Some(value) = wanted(current.as_deref()) else {
        return Tuning::InPlace(current.unwrap_or_default());
    };
    if std::env::var_os(RESTARTED).is_some() {
        return Tuning::Unapplied(
            "GLIBC_TUNABLES was dropped when dsps restarted itself to set it".into(),
        );
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("dsps"));
    restart(arg0, args.collect(), &value)
}

#[cfg(unix)]
fn restart(arg0: OsString, args: Vec<OsString>, tunables: &str) -> Tuning {
    use std::os::unix::process::CommandExt;
    // By its path, not /proc/self/exe, so that the process is still called dsps
    // (its name comes from the file run).
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Tuning::Unapplied(format!("cannot find the running binary: {e}")),
    };
    let err = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(RESTARTED, "1")
        .exec();
    Tuning::Unapplied(format!("cannot restart with GLIBC_TUNABLES set: {err}"))
}

#[cfg(not(unix))]
fn restart(_: OsString, _: Vec<OsString>, _: &str) -> Tuning {
    Tuning::NotGlibc
}

/// Logs how the allocator is set up (after logging is up).
pub fn log(tuning: &Tuning) {
    match tuning {
        Tuning::InPlace(tunables) => {
            tracing::debug!(glibc_tunables = %tunables, "allocator settings in place")
        }
        Tuning::Unapplied(why) => tracing::warn!(
            "{why}; memory freed by departed peers may stay with the process \
             (set GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0)"
        ),
        Tuning::NotGlibc => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";

    #[test]
    fn both_settings_are_added_when_nothing_is_set() {
        assert_eq!(wanted(None).as_deref(), Some(OURS));
        assert_eq!(wanted(Some("")).as_deref(), Some(OURS));
    }

    #[test]
    fn other_tunables_are_kept_in_front() {
        assert_eq!(
            wanted(Some("glibc.rtld.optional_static_tls=4096")).as_deref(),
            Some(&*format!("glibc.rtld.optional_static_tls=4096:{OURS}"))
        );
    }

    #[test]
    fn an_operators_value_is_not_replaced() {
        assert_eq!(
            wanted(Some("glibc.malloc.tcache_count=7")).as_deref(),
            Some("glibc.malloc.tcache_count=7:glibc.malloc.arena_max=1")
        );
        assert_eq!(
            wanted(Some("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=7")),
            None
        );
    }

    #[test]
    fn once_in_place_nothing_more_is_wanted() {
        assert_eq!(wanted(Some(OURS)), None);
    }

    #[test]
    fn a_key_is_matched_whole_not_by_prefix() {
        // `glibc.malloc.tcache_count_x` is not `glibc.malloc.tcache_count`.
        let got = wanted(Some("glibc.malloc.tcache_count_x=1")).unwrap();
        assert!(got.ends_with(OURS), "{got}");
    }
}
