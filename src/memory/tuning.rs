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
//! arena, +1.7 with one arena and a cache of one chunk per size, +1.1 to +2.0
//! with one arena and no cache. The cost is in allocation-heavy work: stream
//! setups (XML) ran about 19 % slower in alternating runs (medians 350 against
//! 430 per second). The data path allocates a few times per read (256 to 512 KiB
//! in bulk), and there 1→16, 1→64 and small-block latency were the same within
//! noise.
//!
//! glibc reads these settings only at start, from `GLIBC_TUNABLES`, so the server
//! runs itself again once with them added. Settings an operator put in
//! `GLIBC_TUNABLES` are kept as they are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// glibc's tunable for the number of arenas.
const ARENA_MAX: &str = "glibc.malloc.arena_max";

/// The settings dsps adds to `GLIBC_TUNABLES` when they are not named there.
pub const SETTINGS: [(&str, &str); 2] = [(ARENA_MAX, "1"), ("glibc.malloc.tcache_count", "0")];

/// glibc's older name for `glibc.malloc.arena_max`, common in container images.
/// `GLIBC_TUNABLES` would override it, so an operator who set it keeps it.
const ARENA_MAX_ALIAS: &str = "MALLOC_ARENA_MAX";

/// Set in the re-executed process: if the settings are lost on the way, dsps
/// must not restart forever.
const RESTARTED: &str = "DSPS_ALLOCATOR_RESTARTED";

/// What `GLIBC_TUNABLES` should become, or `None` if it names every setting
/// already (with our value or the operator's). `arena_alias_set`: the operator
/// set [`ARENA_MAX_ALIAS`], which counts as naming the arena setting.
pub fn wanted(current: Option<&str>, arena_alias_set: bool) -> Option<String> {
    let current = current.unwrap_or("");
    let present: Vec<&str> = current.split(':').filter(|kv| !kv.is_empty()).collect();
    let named = |key: &str| {
        present.iter().any(|kv| kv.split('=').next() == Some(key))
            || (arena_alias_set && key == ARENA_MAX)
    };
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
    let current = match std::env::var_os("GLIBC_TUNABLES").map(OsString::into_string) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => {
            return Tuning::Unapplied("GLIBC_TUNABLES is not UTF-8; left as it is".into())
        }
    };
    let Some(value) = wanted(current.as_deref(), is_set(ARENA_MAX_ALIAS)) else {
        return Tuning::InPlace(current.unwrap_or_default());
    };
    if is_set(RESTARTED) {
        return Tuning::Unapplied(
            "GLIBC_TUNABLES was lost when dsps restarted itself to set it".into(),
        );
    }
    if secure_execution() {
        return Tuning::Unapplied(
            "glibc ignores GLIBC_TUNABLES for a program with file capabilities or setuid".into(),
        );
    }
    let exe = match running_binary() {
        Ok(exe) => exe,
        Err(why) => return Tuning::Unapplied(why),
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("dsps"));
    restart(&exe, arg0, args.collect(), &value)
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Whether the kernel started us in secure-execution mode (`AT_SECURE` in the
/// auxiliary vector: setuid, file capabilities), in which glibc ignores tunables.
fn secure_execution() -> bool {
    const AT_SECURE: u64 = 23;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return false;
    };
    auxv.chunks_exact(16).any(|pair| {
        let word = |at: usize| u64::from_ne_bytes(pair[at..at + 8].try_into().unwrap());
        word(0) == AT_SECURE && word(8) != 0
    })
}

/// The file to run again: the binary by its path, so that the process keeps its
/// name; `/proc/self/exe` if that path no longer holds it (replaced or deleted
/// since we started: the link then reads `… (deleted)`).
fn running_binary() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the running binary: {e}"))?;
    let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Started as `ld-linux… dsps …`: running the loader again would run it
    // without the program.
    if name.starts_with("ld-") || name.starts_with("ld.so") {
        return Err(format!(
            "dsps was started through the loader {}; not restarting",
            exe.display()
        ));
    }
    if !exe.is_file() {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    Ok(exe)
}

/// Replaces the process with `exe` run with `arg0`, `args` and `GLIBC_TUNABLES`
/// set to `tunables`. Returns only if that failed; the process is then as it was.
#[cfg(unix)]
pub fn restart(exe: &Path, arg0: OsString, args: Vec<OsString>, tunables: &str) -> Tuning {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(RESTARTED, "1")
        .exec();
    // std set SIGPIPE back to the default for the new program; this one goes on,
    // and a write to a closed socket must stay an error, not a kill.
    ignore_sigpipe();
    Tuning::Unapplied(format!(
        "cannot restart with GLIBC_TUNABLES set ({}): {err}",
        exe.display()
    ))
}

#[cfg(not(unix))]
pub fn restart(_: &Path, _: OsString, _: Vec<OsString>, _: &str) -> Tuning {
    Tuning::Unapplied("restarting needs a Unix exec".into())
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    // SAFETY: installs the SIG_IGN disposition, no handler: nothing runs in
    // signal context. As the Rust runtime itself does at start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Logs how the allocator is set up (after logging is up).
pub fn log(tuning: &Tuning) {
    match tuning {
        Tuning::InPlace(tunables) => {
            tracing::debug!(glibc_tunables = %tunables, "allocator settings in place")
        }
        Tuning::Unapplied(why) => {
            let ours: Vec<String> = SETTINGS.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tracing::warn!(
                "{why}; memory freed by departed peers may stay with the process \
                 (GLIBC_TUNABLES={} is what dsps sets)",
                ours.join(":")
            )
        }
        Tuning::NotGlibc => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";

    #[test]
    fn both_settings_are_added_when_nothing_is_set() {
        assert_eq!(wanted(None, false).as_deref(), Some(OURS));
        assert_eq!(wanted(Some(""), false).as_deref(), Some(OURS));
    }

    #[test]
    fn other_tunables_are_kept_in_front() {
        assert_eq!(
            wanted(Some("glibc.rtld.optional_static_tls=4096"), false).as_deref(),
            Some(&*format!("glibc.rtld.optional_static_tls=4096:{OURS}"))
        );
    }

    #[test]
    fn an_operators_value_is_not_replaced() {
        assert_eq!(
            wanted(Some("glibc.malloc.tcache_count=7"), false).as_deref(),
            Some("glibc.malloc.tcache_count=7:glibc.malloc.arena_max=1")
        );
        assert_eq!(
            wanted(
                Some("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=7"),
                false
            ),
            None
        );
    }

    #[test]
    fn once_in_place_nothing_more_is_wanted() {
        assert_eq!(wanted(Some(OURS), false), None);
    }

    #[test]
    fn a_key_is_matched_whole_not_by_prefix() {
        // `glibc.malloc.tcache_count_x` is not `glibc.malloc.tcache_count`.
        let got = wanted(Some("glibc.malloc.tcache_count_x=1"), false).unwrap();
        assert!(got.ends_with(OURS), "{got}");
    }

    #[test]
    fn an_operators_malloc_arena_max_counts_as_naming_the_arena_setting() {
        assert_eq!(
            wanted(None, true).as_deref(),
            Some("glibc.malloc.tcache_count=0")
        );
        assert_eq!(wanted(Some("glibc.malloc.tcache_count=3"), true), None);
    }

    #[test]
    fn this_process_is_not_in_secure_execution() {
        // The test binary is an ordinary program: the auxiliary vector says so.
        assert!(!secure_execution());
    }
}
