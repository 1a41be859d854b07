//! Replacing the `[tls]` certificate while running (SIGHUP): the relay's rustls
//! `ServerConfig` asks [`ReloadableCert`] for the certificate at each handshake,
//! so a reload swaps what new handshakes get and leaves established TLS sessions
//! alone (they keep the keys they negotiated; nothing is dropped).
//!
//! A reload reads and checks both files first (`tls::load_certified_key`, the
//! same checks as at start-up, key matching the certificate included) and swaps
//! only a pair that passed; a broken file keeps the old pair in use.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls::{load_certified_key, TlsError};
use crate::config::TlsConfig;

/// The certificate new TLS handshakes get; swapped by [`TlsReloader::reload`].
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Starts with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        ReloadableCert {
            current: RwLock::new(key),
        }
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a valid pair: a panic cannot leave it half
        // written, since the swap is a single assignment.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Re-reads `[tls]` into the [`ReloadableCert`] the relay uses.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    files: TlsConfig,
    cert: Arc<ReloadableCert>,
}

impl TlsReloader {
    /// Reloads `files` into `cert`.
    pub fn new(files: TlsConfig, cert: Arc<ReloadableCert>) -> Self {
        TlsReloader { files, cert }
    }

    /// Reads both files again and, if they make a usable pair, hands them to new
    /// handshakes. On error nothing changes; the error names the file.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files)?;
        self.cert.replace(Arc::new(key));
        Ok(())
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsConfig {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::super::tls::load;
    use super::*;

    fn write(dir: &std::path::Path, pair: &crate::certgen::GeneratedPair) -> TlsConfig {
        std::fs::write(dir.join("cert.pem"), &pair.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pair.key_pem).unwrap();
        TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn leaf(cert: &ReloadableCert) -> Vec<u8> {
        cert.current().cert[0].to_vec()
    }

    #[test]
    fn a_reload_swaps_in_a_good_pair_and_keeps_the_old_one_on_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::certgen::self_signed(&["localhost".into()]).unwrap();
        let b = crate::certgen::self_signed(&["localhost".into()]).unwrap();
        let files = write(dir.path(), &a);
        let (_config, reloader) = load(&files).unwrap();
        let first = leaf(&reloader.cert);
        write(dir.path(), &b);
        reloader.reload().expect("b is a good pair");
        let second = leaf(&reloader.cert);
        assert_ne!(first, second, "new handshakes get b");
        // b's certificate with a's key: refused, b stays.
        std::fs::write(dir.path().join("key.pem"), &a.key_pem).unwrap();
        let e = reloader.reload().expect_err("mismatched pair");
        assert!(e.to_string().contains("does not match"), "{e}");
        assert_eq!(leaf(&reloader.cert), second);
        std::fs::write(dir.path().join("cert.pem"), "garbage\n").unwrap();
        let e = reloader.reload().expect_err("not PEM");
        assert!(e.to_string().starts_with("tls.cert"), "{e}");
        assert_eq!(leaf(&reloader.cert), second);
    }
}
