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
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsps"))
        .args(args)
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
