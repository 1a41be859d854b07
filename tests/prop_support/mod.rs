//! Shared by the `prop_*` property tests: one case budget for all of them.
//!
//! proptest, not cargo-fuzz: cargo-fuzz needs a nightly toolchain and this project
//! builds on stable (docs/reliability.md). Every property runs [`DEFAULT_CASES`] cases
//! unless `PROPTEST_CASES` says otherwise, so the suite stays fast in `cargo test` and
//! a long run is one environment variable away:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --no-fail-fast \
//!     --test prop_block --test prop_lines --test prop_query --test prop_reader
//! ```

use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

/// Cases per property in an ordinary `cargo test`.
pub const DEFAULT_CASES: u32 = 256;

/// The seed of an ordinary `cargo test`: the suite (and CI) runs the same cases every
/// time, so a red run is a real change, never the luck of the draw. A long run
/// (`PROPTEST_CASES` set) draws a random seed unless `PROPTEST_RNG_SEED` fixes one.
pub const SUITE_SEED: u64 = 0x0d5b_5006;

/// The configuration every property uses: [`DEFAULT_CASES`] cases, or `PROPTEST_CASES`.
/// Failures are saved beside the test file (`*.proptest-regressions`) and replayed
/// first on the next run, so a case that once failed stays in the suite.
pub fn config() -> Config {
    let long_run = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let cases = long_run.unwrap_or(DEFAULT_CASES);
    let seed_given = std::env::var_os("PROPTEST_RNG_SEED").is_some();
    let rng_seed = if long_run.is_none() && !seed_given {
        RngSeed::Fixed(SUITE_SEED)
    } else {
        Config::default().rng_seed
    };
    Config {
        cases,
        rng_seed,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}
