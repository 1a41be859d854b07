//! The operator's TOML configuration: reading, defaults, validation and the effective
//! view that `dsps --check-config` prints. No socket is bound and no name is resolved
//! here; the only files read are the config itself and `component.secret_file`.
//!
//! `conf/dsps.toml` is the annotated reference: every key with its default and why.
//!
//! - `file`: the file's serde structs (typed fields, serde defaults, unknown keys refused).
//! - `validate`: what serde cannot check (ranges, cross-field rules), building [`Config`].
//! - `secret`: the component secret from the file, its own file or the environment.
//! - `effective`: the effective configuration as TOML, secret masked.
//! - `model`: [`Config`] and its parts, as the rest of the code reads them.
//! - `error`: [`ConfigError`], one line naming the key at fault.
//!
//! Spec: XEP-0037 "Startup" (port 5290), "Stream administration" (`wait`, `expire`);
//! PROFILE 3, 7, 12, 13, 22. Every error is one line that names the key at fault, because the
//! operator reads it in a terminal or a journal, not in a debugger.

mod defaults;
mod effective;
mod error;
mod file;
mod model;
mod secret;
mod server_addr;
mod validate;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::Path;

pub use defaults::*;
pub use effective::MASK;
pub use error::ConfigError;
pub use model::{
    ComponentConfig, Config, HttpConfig, Limits, LogConfig, LogFormat, MetricsConfig, RelayConfig,
    Timeouts, TlsConfig,
};
pub use secret::SecretSource;
pub use server_addr::ServerAddr;

/// A configuration that passed every check, with what is needed to show it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What dsps runs with.
    pub config: Config,
    /// Where the component secret came from.
    pub secret_source: SecretSource,
    file: file::File,
}

impl Loaded {
    /// Reads, parses and checks the file at `path`. Relative paths in it (`[tls]`,
    /// `component.secret_file`) are taken from the file's directory, so the config works
    /// whatever directory the service starts in.
    pub fn read(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Loaded::from_text(&text, path.parent(), &|name| std::env::var_os(name))
    }

    /// Parses and checks `text`; relative paths are joined to `dir` if given, and
    /// `env` looks up `component.secret_env`.
    fn from_text(
        text: &str,
        dir: Option<&Path>,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Loaded, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut file: file::File = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| ConfigError::from_serde(text, e))?;
        if let Some(dir) = dir {
            if let Some(tls) = file.tls.as_mut() {
                tls.cert = dir.join(&tls.cert);
                tls.key = dir.join(&tls.key);
            }
            if let Some(path) = file.component.secret_file.as_mut() {
                *path = dir.join(&*path);
            }
        }
        let (config, secret_source) = validate::validate(&file, env)?;
        Ok(Loaded {
            config,
            secret_source,
            file,
        })
    }

    /// The effective configuration as TOML: every key with the value in use, defaults
    /// filled in, the component secret shown as [`MASK`].
    pub fn effective_toml(&self) -> String {
        effective::render(&self.file, &self.config, &self.secret_source)
    }
}

impl Config {
    /// Reads, parses and checks the file at `path` (see [`Loaded::read`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Loaded::read(path).map(|l| l.config)
    }

    /// Parses configuration text, fills in defaults and checks it. Relative paths are
    /// left as written; `component.secret_env` is read from the process environment.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Loaded::from_text(text, None, &|name| std::env::var_os(name)).map(|l| l.config)
    }
}
