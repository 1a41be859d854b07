//! `dsps gen-cert`: a self-signed certificate and key for `[tls]`, for local use,
//! demos and tests. A client trusts it by being given the certificate file itself
//! as its root (`--relay-ca cert.pem` in the examples).
//!
//! Names that parse as IP addresses become IP subject alternative names, the
//! others DNS names (rcgen's rule); a TLS client checks the name it connected to
//! (the create result's `host`) against them. The first name is also the subject's
//! common name. The key is ECDSA P-256, written with mode 0600.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the certificate written by [`write_pair`].
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key written by [`write_pair`].
pub const KEY_FILE: &str = "key.pem";

/// A freshly generated certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct GeneratedPair {
    /// The self-signed certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Why a pair could not be made or written.
#[derive(Debug)]
pub enum GenCertError {
    /// No name was given.
    NoNames,
    /// rcgen refused (e.g. a name that is not a valid DNS name).
    Generate(rcgen::Error),
    /// A file could not be written (or exists and `force` is off).
    Write(PathBuf, io::Error),
}

impl std::fmt::Display for GenCertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenCertError::NoNames => write!(f, "gen-cert needs at least one --name"),
            GenCertError::Generate(e) => write!(f, "cannot generate the certificate: {e}"),
            GenCertError::Write(path, e) if e.kind() == io::ErrorKind::AlreadyExists => write!(
                f,
                "{} already exists (pass --force to replace it)",
                path.display()
            ),
            GenCertError::Write(path, e) => write!(f, "cannot write {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for GenCertError {}

/// A self-signed certificate for `names` (host names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<GeneratedPair, GenCertError> {
    let first = names.first().ok_or(GenCertError::NoNames)?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(GenCertError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, first.as_str());
    let key = rcgen::KeyPair::generate().map_err(GenCertError::Generate)?;
    let cert = params.self_signed(&key).map_err(GenCertError::Generate)?;
    Ok(GeneratedPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates a pair for `names` and writes `dir/cert.pem` (mode 0644) and
/// `dir/key.pem` (mode 0600), creating `dir` if needed. Existing files are kept
/// (an error) unless `force`. Returns the two paths.
pub fn write_pair(
    dir: &Path,
    names: &[String],
    force: bool,
) -> Result<(PathBuf, PathBuf), GenCertError> {
    let pair = self_signed(names)?;
    std::fs::create_dir_all(dir).map_err(|e| GenCertError::Write(dir.to_owned(), e))?;
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    if !force {
        // Refuse before writing either, so a refusal leaves no half-new pair.
        if let Some(p) = [&key, &cert].into_iter().find(|p| p.exists()) {
            return Err(GenCertError::Write(
                p.to_path_buf(),
                io::ErrorKind::AlreadyExists.into(),
            ));
        }
    }
    write_file(&key, pair.key_pem.as_bytes(), 0o600, force)?;
    write_file(&cert, pair.cert_pem.as_bytes(), 0o644, force)?;
    Ok((cert, key))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), GenCertError> {
    let err = |e| GenCertError::Write(path.to_owned(), e);
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options.open(path).map_err(err)?;
        // `mode` only applies to a new file; a replaced one gets it here.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path).map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_pair_that_the_relay_loads_and_keeps_the_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let (cert, key) = write_pair(&out, &names, false).expect("written");
        crate::relay::tls::server_config(&crate::config::TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        })
        .expect("the relay loads what gen-cert wrote");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "key.pem mode {mode:o}");
        }
        let again = write_pair(&out, &names, false).expect_err("kept");
        assert!(again.to_string().contains("already exists"), "{again}");
        write_pair(&out, &names, true).expect("--force replaces");
    }

    #[test]
    fn needs_a_name() {
        assert!(matches!(self_signed(&[]), Err(GenCertError::NoNames)));
    }
}
