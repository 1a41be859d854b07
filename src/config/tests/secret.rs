//! The component secret comes from exactly one of `secret`, `secret_file` and
//! `secret_env`, and a source that yields nothing usable is named.

use super::*;

/// MINIMAL with the inline secret replaced by `lines`.
fn without_inline(lines: &str) -> String {
    with_component(&MINIMAL.replace("secret = \"s3cret\"\n", ""), lines)
}

fn parse_err_env(text: &str, env: &[(&str, &str)]) -> String {
    let message = parse_env(text, env).unwrap_err().to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    message
}

#[test]
fn a_secret_file_is_read_without_its_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    for (contents, want) in [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        (" two words \n\n", " two words "),
    ] {
        std::fs::write(&path, contents).unwrap();
        let text = without_inline(&format!("secret_file = {:?}", path.to_str().unwrap()));
        assert_eq!(Config::parse(&text).unwrap().component.secret, want);
    }
}

#[test]
fn an_unreadable_or_empty_secret_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let text = without_inline(&format!("secret_file = {:?}", path.to_str().unwrap()));
    let message = err(&text);
    assert!(
        message.starts_with(&format!(
            "component.secret_file: cannot read {}: ",
            path.display()
        )),
        "{message}"
    );
    for empty in ["", "\n", "\r\n"] {
        std::fs::write(&path, empty).unwrap();
        assert_eq!(
            err(&text),
            format!("component.secret_file: {} is empty", path.display())
        );
    }
    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    assert_eq!(
        err(&text),
        format!(
            "component.secret_file: {} is not UTF-8 text",
            path.display()
        )
    );
}

#[test]
fn a_secret_can_come_from_the_environment() {
    let text = without_inline("secret_env = \"DSPS_TEST_SECRET\"");
    let config = parse_env(&text, &[("DSPS_TEST_SECRET", "from-env")]).unwrap();
    assert_eq!(config.component.secret, "from-env");
    assert_eq!(
        parse_err_env(&text, &[]),
        "component.secret_env: environment variable DSPS_TEST_SECRET is not set"
    );
    assert_eq!(
        parse_err_env(&text, &[("DSPS_TEST_SECRET", "")]),
        "component.secret_env: environment variable DSPS_TEST_SECRET is empty"
    );
    let text = without_inline("secret_env = \"\"");
    assert!(parse_err_env(&text, &[])
        .starts_with("component.secret_env: \"\" is not an environment variable name"));
}

#[test]
fn exactly_one_secret_source_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cret").unwrap();
    let file = format!("secret_file = {:?}", path.to_str().unwrap());
    let env = [("DSPS_TEST_SECRET", "from-env")];
    assert_eq!(
        parse_err_env(&with_component(MINIMAL, &file), &env),
        "component.secret_file: conflicts with component.secret: give the secret in one way only"
    );
    assert_eq!(
        parse_err_env(
            &without_inline(&format!("{file}\nsecret_env = \"DSPS_TEST_SECRET\"")),
            &env
        ),
        "component.secret_env: conflicts with component.secret_file: give the secret in one way only"
    );
    assert_eq!(
        parse_err_env(&without_inline(""), &env),
        "component.secret: required, but missing (or set component.secret_file or component.secret_env)"
    );
}

#[test]
fn loaded_says_where_the_secret_came_from() {
    let text = without_inline("secret_env = \"DSPS_TEST_SECRET\"");
    let lookup = |_: &str| Some(std::ffi::OsString::from("x"));
    let loaded = Loaded::from_text(&text, None, &lookup).unwrap();
    assert_eq!(
        loaded.secret_source,
        SecretSource::Env("DSPS_TEST_SECRET".into())
    );
    let loaded = Loaded::from_text(MINIMAL, None, &lookup).unwrap();
    assert_eq!(loaded.secret_source, SecretSource::Inline);
}
