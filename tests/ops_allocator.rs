//! The server starts itself with glibc's allocator settings (one arena, no
//! per-thread cache: see `memory::tuning`) by running its binary again once, and
//! keeps what an operator set. Checked on the real binary: its log, and the
//! environment and name of the process that runs.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use std::time::Duration;

use common::dsps::{Component, Dsps};

const DOMAIN: &str = "dsps.localhost";
const SECRET: &str = "ops-allocator-secret";
/// Nothing listens there: the component retries, which is all these tests need.
const NO_SERVER: &str = "127.0.0.1:1";
const BOUND: Duration = Duration::from_secs(15);
const OURS: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";

fn start(env: &[(&str, &str)]) -> Dsps {
    let d = Dsps::spawn(NO_SERVER, &Component::new(DOMAIN, SECRET).env(env));
    d.wait_for_log("connecting to XMPP server", BOUND);
    d
}

/// The environment the running program was started with, one `K=V` per entry.
fn environ(d: &Dsps) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{}/environ", d.pid())).expect("read environ");
    raw.split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect()
}

fn logged_tunables(d: &Dsps) -> String {
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("allocator settings in place"))
        .unwrap_or_else(|| panic!("no allocator line in the log:\n{log}"));
    let at = line.find("glibc_tunables=").expect("the field") + "glibc_tunables=".len();
    line[at..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn by_default_the_server_runs_again_with_one_arena_and_no_thread_cache() {
    let d = start(&[]);
    assert_eq!(logged_tunables(&d), OURS);
    let env = environ(&d);
    // The process we spawned is the one running (same PID), now started again by
    // exec with the settings in its environment.
    // (glibc's loader may cut the variable in place where it parses it, so its
    // settings are looked for anywhere in the block.)
    assert!(
        env.iter().any(|kv| kv.starts_with("GLIBC_TUNABLES=")),
        "{env:?}"
    );
    for (key, value) in [("arena_max", "1"), ("tcache_count", "0")] {
        let setting = format!("glibc.malloc.{key}={value}");
        assert!(
            env.iter().any(|kv| kv.contains(&setting)),
            "{setting}: {env:?}"
        );
    }
    assert!(env.iter().any(|kv| kv == "DSPS_ALLOCATOR_RESTARTED=1"));
    // Still called dsps in ps, top and the journal.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid())).unwrap();
    assert_eq!(comm.trim(), "dsps");
    assert!(!d.log().contains("WARN dsps::memory"), "{}", d.log());
}

#[test]
fn an_operators_own_value_is_kept_and_the_missing_one_added() {
    let d = start(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")]);
    assert_eq!(
        logged_tunables(&d),
        "glibc.malloc.tcache_count=7:glibc.malloc.arena_max=1"
    );
}

#[test]
fn with_both_settings_named_already_it_does_not_run_again() {
    let mine = "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=7";
    let d = start(&[("GLIBC_TUNABLES", mine)]);
    assert_eq!(logged_tunables(&d), mine);
    assert!(!environ(&d)
        .iter()
        .any(|kv| kv.starts_with("DSPS_ALLOCATOR_RESTARTED")));
}

#[test]
fn if_the_settings_are_lost_on_the_way_it_warns_and_runs_without_them() {
    // As if the system had dropped GLIBC_TUNABLES when dsps ran itself again: it
    // must not restart forever.
    let d = start(&[("DSPS_ALLOCATOR_RESTARTED", "1")]);
    d.wait_for_log("GLIBC_TUNABLES was dropped", BOUND);
    assert!(d.log().contains("WARN"), "{}", d.log());
    assert!(!d.log().contains("allocator settings in place"));
}
