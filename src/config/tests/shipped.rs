//! The shipped documentation cannot drift from the code: `conf/dsps.toml` parses and
//! lists every key with its real default, and the README's reference names every key
//! with the same defaults.

use super::*;

const CONF: &str = include_str!("../../../conf/dsps.toml");
const README: &str = include_str!("../../../README.md");

/// Keys with no value unless set, so never in the effective view: `conf/dsps.toml`
/// shows them commented out.
const OPTIONAL: [&str; 7] = [
    "component.secret_file",
    "component.secret_env",
    "relay.targets",
    "http.listen",
    "tls.cert",
    "tls.key",
    "metrics.listen",
];

/// The effective view of the shipped file's required keys alone: every default.
fn defaults(conf: &toml::Table) -> toml::Table {
    let get = |section: &str, key: &str| conf[section][key].as_str().unwrap().to_owned();
    let minimal = format!(
        "[component]\njid = {:?}\nserver = {:?}\nsecret = \"x\"\n[relay]\nlisten = {:?}\n",
        get("component", "jid"),
        get("component", "server"),
        get("relay", "listen"),
    );
    let lookup = |_: &str| None;
    let loaded = Loaded::from_text(&minimal, None, &lookup).unwrap();
    loaded.effective_toml().parse().unwrap()
}

#[test]
fn the_shipped_config_parses() {
    let config = Config::parse(CONF).unwrap();
    assert_eq!(config.limits, Limits::default());
}

#[test]
fn the_shipped_config_lists_every_key_with_its_default() {
    let conf: toml::Table = CONF.parse().unwrap();
    let defaults = defaults(&conf);
    for (section, table) in &defaults {
        for (key, value) in table.as_table().unwrap() {
            if key == "secret" {
                continue;
            }
            assert_eq!(
                conf.get(section).and_then(|s| s.get(key)),
                Some(value),
                "conf/dsps.toml: {section}.{key} should be set to its default {value}"
            );
        }
    }
    // The optional keys are shown, commented out, as `# key = ` or `# [table]`.
    for key in OPTIONAL {
        let (_, name) = key.rsplit_once('.').unwrap();
        let shown = CONF.contains(&format!("# {name} = "))
            || CONF.contains(&format!("{name} = "))
            || CONF.contains(&format!("# [{key}]"));
        assert!(shown, "conf/dsps.toml does not show {key}");
    }
    for table in ["http", "tls", "metrics"] {
        assert!(
            CONF.contains(&format!("# [{table}]")),
            "no [{table}] example"
        );
    }
}

/// The README's "Configuration reference" rows: the keys a row names and its default.
fn readme_rows() -> Vec<(Vec<String>, String)> {
    let start = README
        .find("## Configuration reference")
        .expect("README has a configuration reference");
    let section = &README[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let keys = cells[0]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect();
            (keys, cells[1].to_owned())
        })
        .collect()
}

#[test]
fn the_readme_reference_names_every_key_with_its_default() {
    let conf: toml::Table = CONF.parse().unwrap();
    let defaults = defaults(&conf);
    let rows = readme_rows();
    let row = |key: &str| rows.iter().find(|(keys, _)| keys.iter().any(|k| k == key));
    for key in OPTIONAL {
        assert!(row(key).is_some(), "README reference lacks {key}");
    }
    let mut checked = 0;
    for (section, table) in &defaults {
        for (key, value) in table.as_table().unwrap() {
            let name = format!("{section}.{key}");
            let (_, default) =
                row(&name).unwrap_or_else(|| panic!("README reference lacks {name}"));
            // Rows whose default is one literal (`64`, `false`) must say the real one;
            // the others describe it in words, and these two name the key it comes from.
            if ["relay.host", "relay.port"].contains(&name.as_str()) {
                continue;
            }
            if let Some(literal) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
                assert_eq!(literal, value.to_string(), "README default of {name}");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} README defaults were literals");
}
