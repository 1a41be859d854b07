//! TLS for the relay port (XEP "Connecting to DSPS via SSL method"): the `[tls]`
//! certificate and key, loaded at start-up into a rustls `ServerConfig` (and again
//! on SIGHUP, see `tls_reload`), and the PEM reading the client side shares for its
//! trusted roots.
//!
//! Always the ring provider, passed explicitly: a second provider anywhere in the
//! build would make rustls' process-wide default panic (notes/xmpp-component.md §1).
//! TLS 1.3 and 1.2 only; the `ssl` feature we advertise carries the highest
//! version offered ([`ADVERTISED_VERSION`]). The handshake itself runs in each
//! connection's task, under the relay's handshake timeout (`conn`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};

use super::tls_reload::{ReloadableCert, TlsReloader};

use crate::config::TlsConfig;

/// The TLS versions offered, highest first.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
/// The `version` of the `<feature type='ssl'/>` we advertise: the highest TLS
/// version offered (PROFILE 12; the XEP's example says `3.0`, meaning SSL 3.0).
pub const ADVERTISED_VERSION: &str = "1.3";

/// The one crypto provider this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why the `[tls]` files could not be used. Each message is one line that names
/// the file (and the key of the config that points to it).
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read.
    Read {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is empty.
    Empty {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM item of the kind wanted (or is not PEM at all).
    NotFound {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for, e.g. "CERTIFICATE".
        wanted: &'static str,
    },
    /// The PEM is damaged (bad base64, a section without its end line).
    BadPem {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's words.
        error: String,
    },
    /// rustls refused the pair: a key that does not match the certificate, or a
    /// key type it cannot use.
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Read { key, path, error } => {
                write!(f, "{key}: cannot read {}: {error}", path.display())
            }
            TlsError::Empty { key, path } => write!(f, "{key}: {} is empty", path.display()),
            TlsError::NotFound { key, path, wanted } => write!(
                f,
                "{key}: {} holds no PEM {wanted} (expected a -----BEGIN {wanted}----- section)",
                path.display()
            ),
            TlsError::BadPem { key, path, error } => {
                write!(f, "{key}: {} is not valid PEM: {error}", path.display())
            }
            TlsError::Rejected {
                cert,
                key,
                error: rustls::Error::InconsistentKeys(_),
            } => write!(
                f,
                "tls.key: {} does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            TlsError::Rejected { cert, key, error } => write!(
                f,
                "tls.key: {} cannot be used with {}: {error}",
                key.display(),
                cert.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read {
        key,
        path: path.to_owned(),
        error,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty {
            key,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn pem_error(key: &'static str, path: &Path, wanted: &'static str, e: pem::Error) -> TlsError {
    match e {
        pem::Error::NoItemsFound => TlsError::NotFound {
            key,
            path: path.to_owned(),
            wanted,
        },
        other => TlsError::BadPem {
            key,
            path: path.to_owned(),
            error: other.to_string(),
        },
    }
}

/// Reads every certificate of the PEM file at `path`; `key` names the setting
/// (or flag) it came from, for the error message. At least one is required.
pub fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, "CERTIFICATE", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            key,
            path,
            "CERTIFICATE",
            pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
pub fn read_private_key(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| pem_error(key, path, "PRIVATE KEY", e))
}

/// Reads `[tls]` into a certificate chain with its signing key, checking that the
/// key is the certificate's. Fails, naming the file, on anything but a readable
/// PEM chain and its key.
pub fn load_certified_key(cfg: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let certs = read_certificates("tls.cert", &cfg.cert)?;
    let key = read_private_key("tls.key", &cfg.key)?;
    // Checks that the key is the certificate's (rustls' `keys_match`).
    CertifiedKey::from_der(certs, key, &provider()).map_err(|error| TlsError::Rejected {
        cert: cfg.cert.clone(),
        key: cfg.key.clone(),
        error,
    })
}

/// Loads `[tls]` into a server config (TLS 1.3 and 1.2, no client certificates)
/// whose certificate a SIGHUP can replace through the returned reloader.
pub fn load(cfg: &TlsConfig) -> Result<(Arc<ServerConfig>, TlsReloader), TlsError> {
    let cert = Arc::new(ReloadableCert::new(Arc::new(load_certified_key(cfg)?)));
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|error| TlsError::Rejected {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            error,
        })?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    Ok((Arc::new(config), TlsReloader::new(cfg.clone(), cert)))
}

/// [`load`] without the reloader: a fixed certificate.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    load(cfg).map(|(config, _)| config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair_in(dir: &Path, cert: &str, key: &str) -> TlsConfig {
        let dir = tempfile::tempdir_in(dir).unwrap().keep();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn error_of(cfg: &TlsConfig) -> String {
        server_config(cfg).expect_err("refused").to_string()
    }

    #[test]
    fn a_generated_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let pair = crate::certgen::self_signed(&["localhost".into()]).unwrap();
        let cfg = pair_in(dir.path(), &pair.cert_pem, &pair.key_pem);
        server_config(&cfg).expect("a matching pair loads");
    }

    #[test]
    fn bad_files_are_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = crate::certgen::self_signed(&["localhost".into()]).unwrap();
        let other = crate::certgen::self_signed(&["localhost".into()]).unwrap();
        let cases = [
            (
                pair_in(dir.path(), "", &good.key_pem),
                "tls.cert",
                "is empty",
            ),
            (
                pair_in(dir.path(), "not a certificate\n", &good.key_pem),
                "tls.cert",
                "holds no PEM CERTIFICATE",
            ),
            (
                pair_in(
                    dir.path(),
                    "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                    &good.key_pem,
                ),
                "tls.cert",
                "is not valid PEM",
            ),
            (
                pair_in(dir.path(), &good.cert_pem, &good.cert_pem),
                "tls.key",
                "holds no PEM PRIVATE KEY",
            ),
            (
                pair_in(dir.path(), &good.cert_pem, &other.key_pem),
                "tls.key",
                "does not match the certificate",
            ),
        ];
        for (cfg, key, words) in cases {
            let message = error_of(&cfg);
            assert!(message.starts_with(key), "{message}");
            assert!(message.contains(words), "{message}");
            assert!(message.contains(dir.path().to_str().unwrap()), "{message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
        let missing = TlsConfig {
            cert: dir.path().join("missing.pem"),
            key: dir.path().join("key.pem"),
        };
        let message = error_of(&missing);
        assert!(message.starts_with("tls.cert: cannot read "), "{message}");
        assert!(message.contains("missing.pem"), "{message}");
    }
}
