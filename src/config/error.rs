//! Why a configuration was refused, as one line naming the key at fault. The key path
//! of a serde error comes from `serde_path_to_error`; the line and column from the
//! TOML parser's span.

use std::fmt;
use std::path::PathBuf;

/// Why the configuration was refused. `Display` is one line that starts with the key at
/// fault (`relay.block_size: ...`) when there is one; the caller names the file.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The text is not valid TOML.
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The TOML parser's complaint, on one line.
        message: String,
    },
    /// A key is unknown, missing, of the wrong type or has a value we refuse.
    Invalid {
        /// Dotted path, e.g. `relay.listen` or `relay.allow_targets[1]`.
        key: String,
        /// What is wrong, e.g. `invalid value: integer `0`, expected a nonzero usize`.
        message: String,
        /// 1-based line and column, when known.
        at: Option<(usize, usize)>,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    pub(super) fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
            at: None,
        }
    }

    /// From what `serde_path_to_error` made of the TOML deserializer's error.
    pub(super) fn from_serde(
        text: &str,
        error: serde_path_to_error::Error<toml::de::Error>,
    ) -> Self {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // toml writes some messages over several lines ("invalid string\nexpected `\"`").
        let message = inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let at = inner.span().map(|span| line_column(text, span.start));
        // An empty path is the document itself: the parser failed before serde saw a key.
        let path = (path != ".").then_some(path);
        // serde reports a missing key against the table that lacks it
        // ("missing field `jid`" at `component`); name the key itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return ConfigError::Invalid {
                key: join(path.as_deref(), field),
                message: "required, but missing".into(),
                at: None,
            };
        }
        let Some(key) = path else {
            let (line, column) = at.unwrap_or((1, 1));
            return ConfigError::Syntax {
                line,
                column,
                message,
            };
        };
        // "unknown field `windw`, expected one of ..." at `relay.windw`: the path
        // already names it, and the file calls fields keys.
        let message = match key.rsplit('.').next() {
            Some(last) => match message.strip_prefix(&format!("unknown field `{last}`")) {
                Some(rest) => format!("unknown key{rest}"),
                None => message,
            },
            None => message,
        };
        ConfigError::Invalid { key, message, at }
    }
}

fn join(path: Option<&str>, field: &str) -> String {
    match path {
        Some(path) => format!("{path}.{field}"),
        None => field.to_owned(),
    }
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { error, .. } => write!(f, "cannot read the file: {error}"),
            ConfigError::Syntax {
                line,
                column,
                message,
            } => write!(f, "invalid TOML at line {line}, column {column}: {message}"),
            ConfigError::Invalid { key, message, at } => {
                write!(f, "{key}: {message}")?;
                if let Some((line, column)) = at {
                    write!(f, " (line {line}, column {column})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}
