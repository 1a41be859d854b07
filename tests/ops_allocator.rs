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

/// Unset (empty) in every child unless a test sets them: the runner's own must
/// not decide the outcome.
const CLEAN: [(&str, &str); 3] = [
    ("GLIBC_TUNABLES", ""),
    ("MALLOC_ARENA_MAX", ""),
    ("DSPS_ALLOCATOR_RESTARTED", ""),
];

fn start(env: &[(&str, &str)]) -> Dsps {
    let mut all: Vec<(&str, &str)> = CLEAN
        .iter()
        .filter(|(k, _)| !env.iter().any(|(set, _)| set == k))
        .copied()
        .collect();
    all.extend_from_slice(env);
    let d = Dsps::spawn(NO_SERVER, &Component::new(DOMAIN, SECRET).env(&all));
    d.wait_for_log("connecting to XMPP server", BOUND);
    d
}

fn restarted(d: &Dsps) -> bool {
    environ(d)
        .iter()
        .any(|kv| kv == "DSPS_ALLOCATOR_RESTARTED=1")
}

/// glibc's own reading of `tunables`: its loader lists every tunable's value.
fn glibc_reads(tunables: &str) -> Option<String> {
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let out = std::process::Command::new(loader)
        .arg("--list-tunables")
        .env("GLIBC_TUNABLES", tunables)
        .output()
        .expect("run the loader");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
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
    assert!(restarted(&d));
    // With the arguments it was given.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert_eq!(args[1], b"--config", "{args:?}");
    assert!(args[2].ends_with(b"dsps.toml"), "{args:?}");
    // And glibc takes the settings as they are spelt.
    match glibc_reads(OURS) {
        Some(list) => {
            assert!(list.contains("glibc.malloc.arena_max: 0x1 "), "{list}");
            assert!(list.contains("glibc.malloc.tcache_count: 0x0 "), "{list}");
        }
        None => eprintln!("no glibc loader found to check the settings' spelling"),
    }
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
    assert!(restarted(&d));
}

#[test]
fn an_operators_malloc_arena_max_is_kept() {
    let d = start(&[("MALLOC_ARENA_MAX", "2")]);
    assert_eq!(logged_tunables(&d), "glibc.malloc.tcache_count=0");
    assert!(restarted(&d));
}

#[test]
fn a_failed_restart_leaves_the_process_as_it_was() {
    // SIGPIPE ignored (signal 13, bit 12 of SigIgn): the Rust runtime's setting,
    // on which every socket write relies to get EPIPE rather than be killed.
    fn sigpipe_ignored() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        mask & (1 << (13 - 1)) != 0
    }
    assert!(sigpipe_ignored());
    let got = dsps::memory::tuning::restart(
        std::path::Path::new("/nonexistent/dsps"),
        "dsps".into(),
        vec![],
        OURS,
    );
    assert!(
        matches!(&got, dsps::memory::tuning::Tuning::Unapplied(why) if why.contains("/nonexistent/dsps")),
        "{got:?}"
    );
    assert!(sigpipe_ignored(), "SIGPIPE is no longer ignored");
}

#[test]
fn with_both_settings_named_already_it_does_not_run_again() {
    let mine = "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=7";
    let d = start(&[("GLIBC_TUNABLES", mine)]);
    assert_eq!(logged_tunables(&d), mine);
    assert!(!restarted(&d));
}

#[test]
fn if_the_settings_are_lost_on_the_way_it_warns_and_runs_without_them() {
    // As if GLIBC_TUNABLES had been lost when dsps ran itself again: it
    // must not restart forever.
    let d = start(&[("DSPS_ALLOCATOR_RESTARTED", "1")]);
    d.wait_for_log("GLIBC_TUNABLES was lost", BOUND);
    assert!(d.log().contains("WARN"), "{}", d.log());
    assert!(!d.log().contains("allocator settings in place"));
}
