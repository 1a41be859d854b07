//! The `dsps` binary and `[tls]`: unusable certificate or key files stop it at
//! start-up, before any port is bound or the XMPP server is dialled, with exit
//! status 2 and one line naming the file; `dsps gen-cert` writes a pair the relay
//! accepts, with the key readable by its owner only.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bound on one run of the binary (each of these exits at once).
const RUN_BOUND: Duration = Duration::from_secs(10);

fn dsps(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsps"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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

/// Runs `dsps --config` with `[tls]` pointing at `cert` and `key`; asserts exit 2
/// and one stderr line, and returns it.
fn start_with_tls(dir: &Path, cert: &Path, key: &Path) -> String {
    let config = dir.join("dsps.toml");
    std::fs::write(
        &config,
        format!(
            "[component]\njid = \"dsps.localhost\"\nserver = \"127.0.0.1:9\"\nsecret = \"s\"\n\
             [relay]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = dsps(&["--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn unusable_cert_or_key_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pair = dir.path().join("pair");
    let other = dir.path().join("other");
    let names = vec!["localhost".to_string()];
    let (cert, key) = dsps::certgen::write_pair(&pair, &names, false).unwrap();
    let (_, other_key) = dsps::certgen::write_pair(&other, &names, false).unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let text = dir.path().join("text.pem");
    std::fs::write(&text, "this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.pem");

    let cases: [(&Path, &Path, &Path, &str); 6] = [
        (&missing, &key, &missing, "cannot read"),
        (&empty, &key, &empty, "is empty"),
        (&text, &key, &text, "holds no PEM CERTIFICATE"),
        (&cert, &empty, &empty, "is empty"),
        (&cert, &cert, &cert, "holds no PEM PRIVATE KEY"),
        (
            &cert,
            &other_key,
            &other_key,
            "does not match the certificate",
        ),
    ];
    for (c, k, named, words) in cases {
        let line = start_with_tls(dir.path(), c, k);
        assert!(line.starts_with("dsps: tls."), "{line}");
        assert!(line.contains(named.to_str().unwrap()), "{line}");
        assert!(line.contains(words), "{line}");
    }
}

#[test]
fn gen_cert_writes_a_usable_pair_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tls");
    let out = dsps(&[
        "gen-cert",
        "--out",
        out_dir.to_str().unwrap(),
        "--name",
        "dsps.example.org",
        "127.0.0.1",
        "--name",
        "::1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cert.pem") && stdout.contains("key.pem"),
        "{stdout}"
    );
    let (cert, key) = (out_dir.join("cert.pem"), out_dir.join("key.pem"));
    dsps::relay::tls::server_config(&dsps::config::TlsConfig {
        cert: cert.clone(),
        key: key.clone(),
    })
    .expect("the relay accepts what gen-cert wrote");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key.pem has mode {mode:o}");
    }
    let before = std::fs::read(&cert).unwrap();
    let again = dsps(&[
        "gen-cert",
        "--out",
        out_dir.to_str().unwrap(),
        "--name",
        "x",
    ]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "kept without --force"
    );
    let forced = dsps(&[
        "gen-cert",
        "--out",
        out_dir.to_str().unwrap(),
        "--name",
        "x",
        "--force",
    ]);
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");
    assert_ne!(
        std::fs::read(&cert).unwrap(),
        before,
        "replaced with --force"
    );
}

#[test]
fn gen_cert_needs_out_and_a_name() {
    let out = dsps(&["gen-cert", "--name", "x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = dsps(&["gen-cert", "--out", "/nonexistent-dir-never-written"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!Path::new("/nonexistent-dir-never-written").exists());
}
