//! The component secret's three sources: `component.secret` (in the file),
//! `component.secret_file` (a file of its own, so the config can be world-readable or
//! kept in version control) and `component.secret_env` (the name of an environment
//! variable, for container and systemd `LoadCredential`-style setups). Exactly one
//! must be set, so that no one wonders which of two wins.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::file::FileComponent;

/// Where the secret in use came from; `--check-config` says so next to the mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `component.secret`.
    Inline,
    /// `component.secret_file`, with the path as resolved.
    File(PathBuf),
    /// `component.secret_env`, with the variable's name.
    Env(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline => f.write_str("component.secret"),
            SecretSource::File(path) => {
                write!(f, "component.secret_file ({})", path.display())
            }
            SecretSource::Env(name) => write!(f, "component.secret_env ({name})"),
        }
    }
}

/// Reads the secret from the one source `c` names; `env` looks a variable up (the
/// process environment, or a table in tests).
pub(super) fn read(
    c: &FileComponent,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(String, SecretSource), ConfigError> {
    let given: Vec<&str> = [
        c.secret.as_ref().map(|_| "secret"),
        c.secret_file.as_ref().map(|_| "secret_file"),
        c.secret_env.as_ref().map(|_| "secret_env"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [first, second, ..] = given[..] {
        return Err(ConfigError::invalid(
            &format!("component.{second}"),
            format!("conflicts with component.{first}: give the secret in one way only"),
        ));
    }
    let (secret, source) = if let Some(secret) = &c.secret {
        (secret.clone(), SecretSource::Inline)
    } else if let Some(path) = &c.secret_file {
        (from_file(path)?, SecretSource::File(path.clone()))
    } else if let Some(name) = &c.secret_env {
        (from_env(name, env)?, SecretSource::Env(name.clone()))
    } else {
        return Err(ConfigError::invalid(
            "component.secret",
            "required, but missing (or set component.secret_file or component.secret_env)",
        ));
    };
    if secret.is_empty() {
        let key = match source {
            SecretSource::Inline => "component.secret",
            SecretSource::File(_) => "component.secret_file",
            SecretSource::Env(_) => "component.secret_env",
        };
        let what = match &source {
            SecretSource::Inline => "must not be empty".to_string(),
            SecretSource::File(path) => format!("{} is empty", path.display()),
            SecretSource::Env(name) => format!("environment variable {name} is empty"),
        };
        return Err(ConfigError::invalid(key, what));
    }
    Ok((secret, source))
}

fn from_file(path: &Path) -> Result<String, ConfigError> {
    let key = "component.secret_file";
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::invalid(key, format!("{} is not UTF-8 text", path.display())))?;
    // Editors and `echo` end the file with a newline that is not part of the secret.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn from_env(name: &str, env: &dyn Fn(&str) -> Option<OsString>) -> Result<String, ConfigError> {
    let key = "component.secret_env";
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?} is not an environment variable name"),
        ));
    }
    env(name)
        .ok_or_else(|| {
            ConfigError::invalid(key, format!("environment variable {name} is not set"))
        })?
        .into_string()
        .map_err(|_| {
            ConfigError::invalid(
                key,
                format!("environment variable {name} is not valid Unicode"),
            )
        })
}
