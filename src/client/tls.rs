//! Whom a client trusts when it starts TLS, to its XMPP server (STARTTLS) or to a
//! relay (the SSL method): the system's roots, the certificates in one PEM file (a
//! private CA, or a self-signed server certificate), or, for tests only, anyone.
//!
//! Every config uses the ring provider and TLS 1.3 or 1.2, like the server side
//! (`relay::tls`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::relay::tls::{provider, read_certificates, TlsError, PROTOCOL_VERSIONS};

fn with_roots(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("ring supports TLS 1.3 and 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One line for a TLS failure, in words: an untrusted certificate says why (and
/// what to do about a private CA); other errors as rustls puts them.
pub fn explain(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(why) => {
            let reason = match why {
                C::UnknownIssuer => "no trusted CA signed it".to_string(),
                C::BadSignature | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    "its signature does not check out against the trusted CAs".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it is for another name".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_string(),
                C::Revoked => "it has been revoked".to_string(),
                other => format!("{other:?}"),
            };
            format!(
                "the server's certificate is not trusted ({reason}); \
                 for a private CA or a self-signed server, trust its certificate with --ca FILE"
            )
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// The rustls error inside an I/O error from a TLS stream, if that is what it is.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Trusts the operating system's certificate store (as `rustls-native-certs` finds
/// it, `SSL_CERT_FILE`/`SSL_CERT_DIR` included). `Err` names why none could be
/// loaded.
pub fn system_roots() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "the store is empty".to_string(), |e| e.to_string());
        return Err(format!("no system trust roots could be loaded: {why}"));
    }
    Ok(with_roots(roots))
}

/// Trusts exactly the certificates in the PEM file at `path`: the CA that issued
/// the server's certificate, or a self-signed server certificate itself.
pub fn trust_pem(path: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates("CA file", path)? {
        roots.add(cert).map_err(|error| TlsError::BadPem {
            key: "CA file",
            path: path.to_owned(),
            error: error.to_string(),
        })?;
    }
    Ok(with_roots(roots))
}

/// Accepts any certificate for any name: the link is encrypted but the server is
/// not authenticated, so anyone on the path can read it. For tests and labs only;
/// callers must make the user ask for it by name (`--insecure`).
pub fn insecure() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("ring supports TLS 1.3 and 1.2")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    Arc::new(config)
}

/// Takes every certificate, but still checks that the server holds its key (the
/// handshake signatures), so the session keys are not trivially forged.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
