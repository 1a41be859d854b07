//! Every kind of error is one line that starts with the key at fault (or says where
//! the TOML is broken).

use super::*;

#[test]
fn missing_keys_are_named() {
    for key in ["jid", "server"] {
        let text: String = MINIMAL
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            err(&text),
            format!("component.{key}: required, but missing")
        );
    }
    assert_eq!(
        err(&MINIMAL.replace("listen = \"[::]:6000\"", "")),
        "relay.listen: required, but missing"
    );
    assert_eq!(err(""), "component: required, but missing");
    assert_eq!(
        err(&format!("{MINIMAL}[http]\n")),
        "http.listen: required, but missing"
    );
    assert_eq!(
        err(&format!("{MINIMAL}[tls]\ncert = \"c.pem\"\n")),
        "tls.key: required, but missing"
    );
}

#[test]
fn bad_addresses_are_named() {
    assert_eq!(
        err(&MINIMAL.replace("[::]:6000", "x")),
        "relay.listen: invalid socket address \"x\": expected ip:port, \
         e.g. 0.0.0.0:5290 or [::]:5290 (line 7, column 10)"
    );
    // A listener needs an address, not a name to resolve.
    let message = err(&MINIMAL.replace("[::]:6000", "localhost:6000"));
    assert!(
        message.starts_with("relay.listen: invalid socket address"),
        "{message}"
    );
    let message = err(&format!("{MINIMAL}[http]\nlisten = \"0.0.0.0\"\n"));
    assert!(
        message.starts_with("http.listen: invalid socket address"),
        "{message}"
    );
    let message = err(&format!(
        "{MINIMAL}[metrics]\nlisten = \"localhost:9090\"\n"
    ));
    assert!(
        message.starts_with("metrics.listen: invalid socket address"),
        "{message}"
    );
    for bad in [
        "localhost",
        "localhost:",
        "localhost:0",
        "::1:5347",
        "a b:1",
        "[::1]",
        "host:99999",
    ] {
        let message = err(&MINIMAL.replace("127.0.0.1:5347", bad));
        assert!(
            message.starts_with(&format!(
                "component.server: invalid server address {bad:?}: expected host:port"
            )),
            "{bad}: {message}"
        );
    }
}

#[test]
fn unknown_keys_are_named_with_their_section() {
    let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nwindw = 3\n"));
    assert!(
        message.starts_with("relay.windw: unknown key, expected one of `listen`"),
        "{message}"
    );
    assert!(message.contains("`window`"), "{message}");
    assert!(message.ends_with("(line 7, column 1)"), "{message}");
    let message = err(&format!("{MINIMAL}[logging]\nlevel = 1\n"));
    assert!(message.starts_with("logging: unknown key"), "{message}");
    for (section, key) in [
        ("timeouts", "idle"),
        ("limits", "streamz"),
        ("http", "port"),
        ("tls", "ca"),
        ("metrics", "path"),
    ] {
        let message = err(&format!("{MINIMAL}[{section}]\n{key} = 1\n"));
        assert!(
            message.starts_with(&format!("{section}.{key}: unknown key")),
            "{message}"
        );
    }
    let message = err(&with_component(MINIMAL, "secret_fil = \"x\""));
    assert!(
        message.starts_with("component.secret_fil: unknown key"),
        "{message}"
    );
}

#[test]
fn wrong_types_are_named() {
    assert_eq!(
        err(&MINIMAL.replace("[relay]\n", "[relay]\nwindow = \"big\"\n")),
        "relay.window: invalid type: string \"big\", expected a nonzero usize (line 7, column 10)"
    );
    let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nport = 70000\n"));
    assert!(
        message.starts_with("relay.port: invalid value"),
        "{message}"
    );
    let message = err(&format!("{MINIMAL}[timeouts]\nwait = -1\n"));
    assert!(
        message.starts_with("timeouts.wait: invalid value"),
        "{message}"
    );
    let message = err(&format!("{MINIMAL}allow_targets = [\"ok.org\", 3]\n"));
    assert!(
        message.starts_with("relay.allow_targets[1]: invalid type: integer `3`"),
        "{message}"
    );
    assert_eq!(
        err("component = 3\n"),
        "component: invalid type: integer `3`, expected a table (line 1, column 13)"
    );
    let message = err(&with_component(MINIMAL, "version_os = \"yes\""));
    assert!(
        message.starts_with("component.version_os: invalid type"),
        "{message}"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nwindow = \n"));
    assert!(
        message.starts_with("invalid TOML at line 7, column 10"),
        "{message}"
    );
    let message = err("[component\n");
    assert!(message.starts_with("invalid TOML at line 1"), "{message}");
    let e = Config::parse("[component\n").unwrap_err();
    assert_eq!(e.key(), None);
}

#[test]
fn invalid_jids_are_refused() {
    for jid in [
        "",
        "user@dsps.localhost",
        "dsps.localhost/res",
        "a..b",
        ".a",
        "a b",
    ] {
        let message = err(&MINIMAL.replace("\"dsps.localhost\"", &format!("{jid:?}")));
        assert!(
            message.starts_with("component.jid: invalid domain"),
            "{message}"
        );
    }
}

#[test]
fn zero_sizes_are_refused() {
    for key in [
        "window",
        "block_size",
        "max_connections",
        "max_connections_per_ip",
        "max_pending_per_ip",
    ] {
        let text = MINIMAL.replace("[relay]\n", &format!("[relay]\n{key} = 0\n"));
        assert_eq!(
            err(&text),
            format!(
                "relay.{key}: invalid value: integer `0`, expected a nonzero usize (line 7, column {})",
                key.len() + 4
            )
        );
    }
    let text = MINIMAL.replace("[relay]\n", "[relay]\nblock_size = 999999999\n");
    assert!(err(&text).starts_with("relay.block_size: must be at most"));
    let text = MINIMAL.replace("[relay]\n", "[relay]\nport = 0\n");
    assert!(err(&text).starts_with("relay.port"));
    let text = format!("{MINIMAL}[timeouts]\nhandshake = 0\n");
    assert!(err(&text).starts_with("timeouts.handshake"));
    let text = format!("{MINIMAL}[timeouts]\ndrain = 0\n");
    assert!(err(&text).starts_with("timeouts.drain"));
    let text = MINIMAL.replace("\"s3cret\"", "\"\"");
    assert_eq!(err(&text), "component.secret: must not be empty");
}

#[test]
fn a_congestion_control_name_that_cannot_be_one_is_refused() {
    for name in [
        "bbr cubic",
        "16-characters-xx",
        "reno\n",
        "reno\\n",
        "cubic;",
    ] {
        let text = MINIMAL.replace(
            "[relay]\n",
            &format!("[relay]\nloopback_congestion = {name:?}\n"),
        );
        let message = err(&text);
        assert!(
            message
                .starts_with("relay.loopback_congestion: a congestion control name is at most 15"),
            "{name}: {message}"
        );
    }
}

#[test]
fn zero_limits_are_refused() {
    for key in [
        "streams",
        "streams_per_jid",
        "seats_per_stream",
        "comment_bytes",
        "comments_per_request",
        "stream_comment_bytes",
        "peers_per_admin",
        "attribute_bytes",
        "streams_per_account",
        "reply_bytes_per_second",
        "reply_bytes_per_second_total",
    ] {
        let text = format!("{MINIMAL}[limits]\n{key} = 0\n");
        assert!(
            err(&text).starts_with(&format!(
                "limits.{key}: invalid value: integer `0`, expected a nonzero usize"
            )),
            "{}",
            err(&text)
        );
    }
}

#[test]
fn bad_relay_targets_are_named() {
    let m = err(&format!(
        "{MINIMAL}allow_targets = [\"ok.org\", \"not a name\"]\n"
    ));
    assert!(m.starts_with("relay.allow_targets[1]: "), "{m}");
    let m = err(&format!(
        "{MINIMAL}[relay.targets]\n\"dsps2.example.org\" = \"192.0.2.7\"\n"
    ));
    assert!(
        m.starts_with("relay.targets.\"dsps2.example.org\": "),
        "{m}"
    );
    let m = err(&format!(
        "{MINIMAL}[relay.targets]\n\"10.0.0.1\" = \"10.0.0.1:1\"\n"
    ));
    assert!(m.contains("must be a domain"), "{m}");
}

#[test]
fn max_stanza_size_must_stay_below_prosodys_limit() {
    let with = |n: usize| {
        MINIMAL.replace(
            "[component]\n",
            &format!("[component]\nmax_stanza_size = {n}\n"),
        )
    };
    for n in [0, 4095, 524_288, 10_000_000] {
        let message = err(&with(n));
        assert!(
            message.starts_with("component.max_stanza_size: must be 4096 to 524287"),
            "{n}: {message}"
        );
    }
    // At the smallest size the default limits no longer fit a stats reply: they must
    // be lowered with it, and the error names the limit at fault.
    let message = err(&with(4096));
    assert!(
        message.starts_with("limits.stream_comment_bytes:"),
        "{message}"
    );
    assert!(
        message.contains("component.max_stanza_size (4096)"),
        "{message}"
    );
    let small = format!(
        "{}[limits]\nstream_comment_bytes = 1024\nattribute_bytes = 512\n",
        with(4096)
    );
    assert_eq!(
        Config::parse(&small).unwrap().component.max_stanza_size,
        4096
    );
    assert_eq!(
        Config::parse(&with(524_287))
            .unwrap()
            .component
            .max_stanza_size,
        524_287
    );
}

#[test]
fn a_streams_comments_must_fit_in_its_stats_reply() {
    // 16384 + 4 × 3072 + 1024 = 29696 bytes at the defaults.
    let text = |comments: usize| {
        format!("{MINIMAL}[limits]\nstream_comment_bytes = {comments}\n")
            .replace("[component]\n", "[component]\nmax_stanza_size = 29696\n")
    };
    assert!(Config::parse(&text(16384)).is_ok());
    let message = err(&text(16385));
    assert!(
        message.starts_with("limits.stream_comment_bytes:"),
        "{message}"
    );
    assert_eq!(
        Config::parse(&text(16385)).unwrap_err().key(),
        Some("limits.stream_comment_bytes")
    );
}

#[test]
fn error_key_accessor_names_the_key() {
    let e = Config::parse(&MINIMAL.replace("[::]:6000", "x")).unwrap_err();
    assert_eq!(e.key(), Some("relay.listen"));
    let e = Config::parse("").unwrap_err();
    assert_eq!(e.key(), Some("component"));
}

#[test]
fn a_missing_file_is_a_read_error_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(&dir.path().join("dsps.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.starts_with("cannot read the file: "), "{message}");
    assert!(!message.contains('\n'));
}
