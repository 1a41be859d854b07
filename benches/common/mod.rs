//! What the micro-benchmarks share: the fixed-count mode that callgrind runs.
//!
//! Criterion picks its own iteration counts and spends most of its time on timing and
//! statistics, so a criterion run under callgrind says little. With
//! `DSPS_BENCH_FIXED=CASE:N` a bench binary instead runs the routine of CASE (a
//! criterion id such as `frame_as_relay/16KiB`) N times, untimed, and exits.
//! `scripts/bench-instructions.sh` runs that under callgrind, collecting only inside the
//! routine (each is `#[inline(never)]` for that), and divides by N.

// Each bench binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::process::exit;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};

/// The environment variable that selects the fixed-count mode.
pub const FIXED_VAR: &str = "DSPS_BENCH_FIXED";

/// One fixed-count run: which case, how many times.
pub struct Fixed {
    /// The case's criterion id.
    pub case: String,
    /// How many times to run its routine.
    pub iterations: u64,
}

/// The fixed-count run asked for in [`FIXED_VAR`], if any. A malformed value ends the
/// process with a message rather than silently running criterion instead.
pub fn fixed_mode() -> Option<Fixed> {
    let value = std::env::var(FIXED_VAR).ok()?;
    let parsed = value
        .rsplit_once(':')
        .and_then(|(case, n)| Some((case, n.parse::<u64>().ok().filter(|&n| n > 0)?)));
    match parsed {
        Some((case, iterations)) if !case.is_empty() => Some(Fixed {
            case: case.to_string(),
            iterations,
        }),
        _ => {
            eprintln!("{FIXED_VAR}={value:?}: expected CASE:N with N a positive count");
            exit(2);
        }
    }
}

/// The subject of the case with criterion id `case` (`group/name`) in `cases`. An
/// unknown id ends the process, naming the ids there are.
pub fn find_case<T: Copy>(cases: &[(&str, &str, T)], case: &str) -> T {
    let id = |group: &str, name: &str| format!("{group}/{name}");
    if let Some(&(_, _, subject)) = cases.iter().find(|(g, n, _)| id(g, n) == case) {
        return subject;
    }
    let known: Vec<String> = cases.iter().map(|(g, n, _)| id(g, n)).collect();
    eprintln!(
        "{FIXED_VAR}: no case {case:?} here; cases: {}",
        known.join(", ")
    );
    exit(2);
}

/// Runs a case's routine as often as it likes: criterion's timing loop, or a fixed count.
/// Generic rather than `dyn`, so a nanosecond routine pays no indirect call.
pub trait Driver {
    /// Runs `routine` repeatedly.
    fn drive<O>(&mut self, routine: impl FnMut() -> O);
    /// Runs `routine` repeatedly, each time on a fresh input from `setup`, which is
    /// neither timed nor (being outside the routine) counted by callgrind.
    fn drive_batched<I, O>(
        &mut self,
        setup: impl FnMut() -> I,
        routine: impl FnMut(I) -> O,
        size: BatchSize,
    );
}

/// One criterion benchmark, `name` in `group`.
pub struct Timed<'g, 'a> {
    /// The group the benchmark reports in.
    pub group: &'g mut BenchmarkGroup<'a, WallTime>,
    /// The benchmark's name within the group.
    pub name: &'static str,
}

impl Driver for Timed<'_, '_> {
    fn drive<O>(&mut self, mut routine: impl FnMut() -> O) {
        self.group
            .bench_function(self.name, |b| b.iter(&mut routine));
    }

    fn drive_batched<I, O>(
        &mut self,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
        size: BatchSize,
    ) {
        self.group.bench_function(self.name, |b| {
            b.iter_batched(&mut setup, &mut routine, size)
        });
    }
}

/// A fixed number of runs, untimed, for callgrind.
pub struct Counted(pub u64);

impl Driver for Counted {
    fn drive<O>(&mut self, mut routine: impl FnMut() -> O) {
        for _ in 0..self.0 {
            std::hint::black_box(routine());
        }
    }

    fn drive_batched<I, O>(
        &mut self,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
        _size: BatchSize,
    ) {
        for _ in 0..self.0 {
            let input = setup();
            std::hint::black_box(routine(input));
        }
    }
}
