//! The `dsps` command line: configuration problems exit with status 2 and one line on
//! stderr that names the file or the key at fault; `--help` and `--version` exit 0.
//! No network is involved: every failing config is refused before anything starts.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Bound on one run of the binary (it should exit at once).
const RUN_BOUND: Duration = Duration::from_secs(10);

/// Runs `dsps` with `args`; kills it and panics if it does not exit within [`RUN_BOUND`].
fn dsps(args: &[&str]) -> Output {
    dsps_env(args, &[])
}

/// [`dsps`] with `env` added to its environment (and `DSPS_TEST_SECRET` removed
/// unless given, so the caller's environment cannot leak in).
fn dsps_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsps"))
        .args(args)
        .env_remove("DSPS_TEST_SECRET")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dsps");
    let start = Instant::now();
    while child.try_wait().expect("wait for dsps").is_none() {
        if start.elapsed() > RUN_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dsps {args:?} did not exit within {RUN_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect dsps output")
}

/// Runs `dsps --config FILE` with `text` as the file.
fn with_config(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsps.toml");
    std::fs::write(&path, text).expect("write config");
    dsps(&["--config", path.to_str().unwrap()])
}

/// Asserts exit status 2 and exactly one line on stderr; returns that line.
fn config_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit status 2, got {:?}; stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    lines[0].to_string()
}

const VALID: &str = r#"
[component]
jid = "dsps.localhost"
server = "127.0.0.1:5347"
secret = "s3cret"

[relay]
listen = "127.0.0.1:0"
"#;

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = dsps(&["--config", missing.to_str().unwrap()]);
    let line = config_error(&out);
    assert!(
        line.contains(missing.to_str().unwrap()),
        "the message must name {}: {line}",
        missing.display()
    );
    assert!(!Path::new(&missing).exists());
}

#[test]
fn bad_toml_exits_2() {
    let line = config_error(&with_config("[component\njid = \"dsps.localhost\"\n"));
    assert!(line.to_lowercase().contains("line 1"), "{line}");
}

#[test]
fn missing_secret_names_component_secret() {
    let text = VALID.replace("secret = \"s3cret\"\n", "");
    let line = config_error(&with_config(&text));
    assert!(line.contains("component.secret"), "{line}");
}

#[test]
fn unparsable_addresses_name_their_key() {
    let text = VALID.replace("127.0.0.1:5347", "not an address");
    let line = config_error(&with_config(&text));
    assert!(line.contains("component.server"), "{line}");
    let text = VALID.replace("127.0.0.1:0", "localhost:");
    let line = config_error(&with_config(&text));
    assert!(line.contains("relay.listen"), "{line}");
}

#[test]
fn unknown_key_is_named() {
    let line = config_error(&with_config(&format!("{VALID}windw = 8\n")));
    assert!(line.contains("relay.windw"), "{line}");
}

#[test]
fn help_and_version_exit_0() {
    let out = dsps(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--config"),
        "help does not mention --config:\n{help}"
    );

    let out = dsps(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("dsps {}", env!("CARGO_PKG_VERSION")),
        "unexpected --version output"
    );
}

#[test]
fn no_arguments_is_a_usage_error() {
    let out = dsps(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config"), "{stderr}");
}

/// Writes `text` as `dsps.toml` in a new temp dir; returns the dir and the path.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsps.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// Asserts exit status 0 and nothing on stderr; returns stdout.
fn checked_ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn check_config_prints_the_effective_config_with_the_secret_masked() {
    let text = VALID.replace("127.0.0.1:5347", "localhost:5347");
    let (_dir, path) = config_file(&text);
    let shown = checked_ok(&dsps(&["--check-config", &path]));
    assert!(shown.contains("secret = \"********\"\n"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("server = \"localhost:5347\"\n"), "{shown}");
    // Defaults are filled in, and the output is itself TOML.
    let table: toml::Table = shown.parse().expect("the output is TOML");
    assert_eq!(table["relay"]["window"].as_integer(), Some(64));
    assert_eq!(table["timeouts"]["drain"].as_integer(), Some(10_000));
    assert_eq!(table["relay"]["host"].as_str(), Some("dsps.localhost"));
    // The same through --config.
    let again = checked_ok(&dsps(&["--config", &path, "--check-config"]));
    assert_eq!(again, shown);
}

#[test]
fn check_config_refuses_a_bad_file_with_one_line_naming_file_and_key() {
    let text = VALID.replace("[relay]\n", "[relay]\nblock_size = 0\n");
    let (_dir, path) = config_file(&text);
    let out = dsps(&["--check-config", &path]);
    let line = config_error(&out);
    assert!(
        line.starts_with(&format!(
            "dsps: {path}: relay.block_size: invalid value: integer `0`"
        )),
        "{line}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout for a bad file");
    let (_dir, path) = config_file(&format!("{VALID}windw = 8\n"));
    let line = config_error(&dsps(&["--check-config", &path]));
    assert!(
        line.starts_with(&format!("dsps: {path}: relay.windw: unknown key")),
        "{line}"
    );
}

#[test]
fn check_config_loads_the_tls_files() {
    let text = format!("{VALID}[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let (dir, path) = config_file(&text);
    let line = config_error(&dsps(&["--check-config", &path]));
    let cert = dir.path().join("cert.pem");
    assert!(
        line.starts_with(&format!(
            "dsps: {path}: tls.cert: cannot read {}",
            cert.display()
        )),
        "{line}"
    );
}

// Elsewhere the system offers no choice, and the setting is ignored with a warning.
#[cfg(target_os = "linux")]
#[test]
fn a_congestion_control_this_process_cannot_use_is_refused_by_check_and_at_start() {
    let text = VALID.replace(
        "[relay]\n",
        "[relay]\nloopback_congestion = \"no-such-cc\"\n",
    );
    let (_dir, path) = config_file(&text);
    let line = config_error(&dsps(&["--check-config", &path]));
    assert!(
        line.starts_with(&format!(
            "dsps: {path}: relay.loopback_congestion \"no-such-cc\" cannot be used here"
        )),
        "{line}"
    );
    assert!(line.contains("this kernel has: "), "{line}");
    // At start it is refused too: exit 1 and the same reason.
    let out = dsps(&["--config", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("dsps: relay.loopback_congestion \"no-such-cc\" cannot be used here"),
        "{stderr}"
    );
    // The default is one every Linux kernel has.
    let shown = checked_ok(&dsps(&["--check-config", &config_file(VALID).1]));
    assert!(shown.contains("loopback_congestion = \"reno\""), "{shown}");
}

#[test]
fn check_config_reads_the_secret_from_the_environment_or_a_file() {
    let text = VALID.replace("secret = \"s3cret\"", "secret_env = \"DSPS_TEST_SECRET\"");
    let (dir, path) = config_file(&text);
    let shown = checked_ok(&dsps_env(
        &["--check-config", &path],
        &[("DSPS_TEST_SECRET", "env-secret")],
    ));
    assert!(!shown.contains("env-secret"), "{shown}");
    assert!(shown.contains("secret = \"********\"\n"), "{shown}");
    let line = config_error(&dsps(&["--check-config", &path]));
    assert_eq!(
        line,
        format!(
            "dsps: {path}: component.secret_env: environment variable DSPS_TEST_SECRET is not set"
        )
    );

    // A relative secret_file is found beside the config, whatever the working directory.
    let text = VALID.replace("secret = \"s3cret\"", "secret_file = \"secret\"");
    std::fs::write(&path, text).unwrap();
    let line = config_error(&dsps(&["--check-config", &path]));
    let secret = dir.path().join("secret");
    assert!(
        line.starts_with(&format!(
            "dsps: {path}: component.secret_file: cannot read {}",
            secret.display()
        )),
        "{line}"
    );
    std::fs::write(&secret, "file-secret\n").unwrap();
    let shown = checked_ok(&dsps(&["--check-config", &path]));
    assert!(!shown.contains("file-secret"), "{shown}");
    // Two sources at once are refused, naming the second.
    let text = VALID.replace(
        "secret = \"s3cret\"",
        "secret = \"a\"\nsecret_file = \"secret\"",
    );
    std::fs::write(&path, text).unwrap();
    let line = config_error(&dsps(&["--check-config", &path]));
    assert!(
        line.starts_with(&format!(
            "dsps: {path}: component.secret_file: conflicts with component.secret"
        )),
        "{line}"
    );
}

#[test]
fn check_config_needs_one_file() {
    let line = config_error(&dsps(&["--check-config"]));
    assert!(line.contains("--check-config needs a FILE"), "{line}");
    let (_dir, a) = config_file(VALID);
    let (_dir2, b) = config_file(VALID);
    let line = config_error(&dsps(&["--config", &a, "--check-config", &b]));
    assert!(line.contains("name different files"), "{line}");
}
