//! TLS material for the listeners.
//!
//! Every listener that carries a token speaks TLS. When no certificate is
//! configured, a self-signed one for `localhost`/`127.0.0.1` is generated at
//! first start and kept in the state folder (fine for the demo; configure a
//! real one in production).

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Install the process-wide crypto provider once (rustls needs exactly one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Paths of the certificate and key to serve, creating a self-signed pair
/// in `state_dir` when none is configured.
pub fn cert_paths(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
) -> Result<(PathBuf, PathBuf)> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok((c.to_path_buf(), k.to_path_buf())),
        (None, None) => {
            let c = state_dir.join("tls-cert.pem");
            let k = state_dir.join("tls-key.pem");
            if !c.exists() || !k.exists() {
                let generated = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ])
                .context("generating a self-signed TLS certificate")?;
                // Public, but it lives in the private state folder like
                // everything else there (owner only).
                crate::files::write_private(&c, generated.cert.pem().as_bytes())?;
                crate::files::write_private(&k, generated.signing_key.serialize_pem().as_bytes())?;
            }
            Ok((c, k))
        }
        _ => anyhow::bail!(
            "set both tls_cert and tls_key, or neither (a self-signed pair is then generated)"
        ),
    }
}

/// A rustls server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>> {
    install_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
