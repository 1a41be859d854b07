//! `--check-config`'s view: every key with the value in use, the secret masked.

use super::*;

fn effective(text: &str, env: &[(&str, &str)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
    };
    Loaded::from_text(text, None, &lookup)
        .unwrap()
        .effective_toml()
}

/// The keys of each table of a rendering, as `section.key`.
fn keys(rendered: &str) -> Vec<String> {
    let table: toml::Table = rendered.parse().unwrap();
    let mut keys = Vec::new();
    for (section, value) in &table {
        for key in value.as_table().unwrap().keys() {
            keys.push(format!("{section}.{key}"));
        }
    }
    keys
}

#[test]
fn every_key_is_shown_with_defaults_filled_in() {
    let shown = effective(MINIMAL, &[]);
    let mut want: Vec<String> = [
        "component.jid",
        "component.server",
        "component.secret",
        "component.version_os",
        "component.max_depth",
        "component.max_inbound_stanza_size",
        "component.max_stanza_size",
        "relay.listen",
        "relay.host",
        "relay.port",
        "relay.window",
        "relay.block_size",
        "relay.max_connections",
        "relay.max_connections_per_ip",
        "relay.max_pending_per_ip",
        "relay.loopback_congestion",
        "relay.allow_targets",
        "timeouts.wait",
        "timeouts.expire",
        "timeouts.handshake",
        "timeouts.drain",
        "limits.streams",
        "limits.streams_per_jid",
        "limits.streams_per_account",
        "limits.seats_per_stream",
        "limits.comment_bytes",
        "limits.comments_per_request",
        "limits.stream_comment_bytes",
        "limits.peers_per_admin",
        "limits.attribute_bytes",
        "limits.reply_bytes_per_second",
        "limits.reply_bytes_per_second_total",
        "log.format",
        "log.ip_addresses",
        "admin.jids",
    ]
    .map(String::from)
    .to_vec();
    let mut got = keys(&shown);
    want.sort();
    got.sort();
    assert_eq!(got, want, "{shown}");
    // Derived defaults are shown as their values.
    assert!(shown.contains("host = \"dsps.localhost\"\n"), "{shown}");
    assert!(shown.contains("port = 6000\n"), "{shown}");
    assert!(shown.contains("# [http] is not set"), "{shown}");
    assert!(shown.contains("# [tls] is not set"), "{shown}");
    assert!(shown.contains("# [metrics] is not set"), "{shown}");
}

#[test]
fn the_rendering_reads_back_as_the_same_configuration() {
    let text = format!("{FULL}[relay.targets]\n\"dsps2.example.org\" = \"192.0.2.7:5290\"\n")
        .replace(
            "[relay]\n",
            "[relay]\nallow_targets = [\"*.example.org\", \"10.0.0.0/8\"]\nwindow = 3\n",
        );
    let original = Config::parse(&text).unwrap();
    let shown = effective(&text, &[]);
    let mut again = Config::parse(&shown).unwrap();
    assert_eq!(again.component.secret, MASK);
    again.component.secret = original.component.secret.clone();
    assert_eq!(again, original, "{shown}");
    assert!(shown.contains("[relay.targets]"), "{shown}");
    assert!(!shown.contains("is not set"), "{shown}");
}

#[test]
fn the_secret_is_masked_whatever_its_source() {
    let shown = effective(MINIMAL, &[]);
    assert!(shown.contains("secret = \"********\"\n"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.starts_with("# component.secret is masked; it comes from component.secret.\n"));

    let text = MINIMAL.replace("secret = \"s3cret\"", "secret_env = \"DSPS_TEST_SECRET\"");
    let shown = effective(&text, &[("DSPS_TEST_SECRET", "hunter2-env")]);
    assert!(!shown.contains("hunter2-env"), "{shown}");
    assert!(shown.contains("secret = \"********\"\n"), "{shown}");
    // The source is named once, in the comment; the table holds only the mask, so
    // the output is itself a valid configuration with one secret source.
    assert!(!shown.contains("secret_env ="), "{shown}");
    assert!(
        shown.contains("comes from component.secret_env (DSPS_TEST_SECRET)"),
        "{shown}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "hunter2-file\n").unwrap();
    let text = MINIMAL.replace(
        "secret = \"s3cret\"",
        &format!("secret_file = {:?}", path.to_str().unwrap()),
    );
    let shown = effective(&text, &[]);
    assert!(!shown.contains("hunter2-file"), "{shown}");
    assert!(!shown.contains("secret_file ="), "{shown}");
    assert!(
        shown.contains(&format!(
            "comes from component.secret_file ({})",
            path.display()
        )),
        "{shown}"
    );
}
