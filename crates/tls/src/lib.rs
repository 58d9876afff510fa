//! The one place the gateway builds a TLS client configuration, for every
//! connection it opens over TLS: MySQL targets, HTTP upstreams and SIEM
//! sinks. It trusts a CA file or the system's roots, may present a client
//! certificate, and offers the ALPN protocols it is given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// What a TLS client trusts and presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTls<'a> {
    /// PEM certificates to trust instead of the system's roots.
    pub ca_file: Option<&'a Path>,
    /// Refuse a configuration that trusts nothing (no certificate in
    /// `ca_file`, or none loaded from the system) instead of building one
    /// whose handshakes all fail.
    pub require_roots: bool,
    /// A PEM certificate chain and its PEM private key, presented to
    /// servers that ask for a client certificate.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// ALPN protocols to offer, most preferred first (none: no ALPN).
    pub alpn: &'a [&'a [u8]],
}

/// Why a TLS client configuration cannot be built. Callers say which
/// connection it is for.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The CA file cannot be read, or is not PEM.
    #[error("cannot read ca_file {}: {reason}", path.display())]
    ReadCaFile {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A certificate in the CA file cannot be a trust anchor.
    #[error("bad ca_file: {reason}")]
    BadCaFile {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Nothing to trust, and `require_roots` was asked for.
    #[error("no CA certificates to trust: set ca_file")]
    NoRoots,
    /// The client certificate chain cannot be read.
    #[error("cannot read client_cert {}: {reason}", path.display())]
    ReadClientCert {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The client private key cannot be read.
    #[error("cannot read client_key {}: {reason}", path.display())]
    ReadClientKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate and key (they do not match, or the
    /// key type is not supported).
    #[error("client certificate refused: {reason}")]
    ClientCertRefused {
        /// What went wrong.
        reason: String,
    },
}

/// Install the process-wide crypto provider unless one is installed
/// (rustls needs exactly one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// A rustls client configuration as `tls` says.
pub fn client_config(tls: &ClientTls<'_>) -> Result<rustls::ClientConfig, ClientTlsError> {
    install_crypto_provider();
    let roots = roots(tls.ca_file)?;
    if tls.require_roots && roots.is_empty() {
        return Err(ClientTlsError::NoRoots);
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match tls.client_cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientTlsError::ReadClientCert {
                    path: cert.to_path_buf(),
                    reason: e.to_string(),
                })?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| ClientTlsError::ReadClientKey {
                    path: key.to_path_buf(),
                    reason: e.to_string(),
                })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ClientTlsError::ClientCertRefused {
                    reason: e.to_string(),
                }
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The certificates in `ca_file`, or the system's roots (those that load).
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientTlsError::ReadCaFile {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            for c in certs {
                roots.add(c).map_err(|e| ClientTlsError::BadCaFile {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_ca_file_client_certificate_and_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path());
        let config = client_config(&ClientTls {
            ca_file: Some(&cert),
            require_roots: true,
            client_cert: Some((&cert, &key)),
            alpn: &[b"h2", b"http/1.1"],
        })
        .unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let plain = client_config(&ClientTls {
            ca_file: Some(&cert),
            ..ClientTls::default()
        })
        .unwrap();
        assert!(!plain.client_auth_cert_resolver.has_certs());
        assert!(plain.alpn_protocols.is_empty());
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(&ClientTls {
            ca_file: Some(&missing),
            ..ClientTls::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read ca_file {}: ", missing.display())),
            "{e}"
        );

        // A CA file without certificates trusts nothing: refused only
        // when roots are required.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let tls = ClientTls {
            ca_file: Some(&empty),
            ..ClientTls::default()
        };
        assert!(client_config(&tls).is_ok());
        let e = client_config(&ClientTls {
            require_roots: true,
            ..tls
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "no CA certificates to trust: set ca_file");

        let (cert, _) = pair(dir.path());
        let e = client_config(&ClientTls {
            ca_file: Some(&cert),
            client_cert: Some((&cert, &missing)),
            ..ClientTls::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read client_key {}: ", missing.display())),
            "{e}"
        );
    }
}
