//! Re-origination: the gateway's own SSH connection to the target, with the
//! credential only it holds and the target's host key pinned.

use gatehouse_core::policy::ConnectionConfig;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use std::sync::Arc;
use std::time::Duration;

/// The keys the target may present (from `host_key` or `known_hosts`).
pub fn pinned_keys(conn: &ConnectionConfig) -> Result<Vec<PublicKey>, String> {
    if let Some(line) = &conn.host_key {
        let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
            format!(
                "connection \"{}\": host_key is not an OpenSSH public key (\"ssh-ed25519 AAAA…\"): {e}",
                conn.name
            )
        })?;
        return Ok(vec![key]);
    }
    if let Some(path) = &conn.known_hosts {
        let keys = russh::keys::known_hosts::known_host_keys_path(&conn.host, conn.port, path)
            .map_err(|e| {
                format!(
                    "connection \"{}\": reading known_hosts {}: {e}",
                    conn.name,
                    path.display()
                )
            })?;
        if keys.is_empty() {
            return Err(format!(
                "connection \"{}\": {} has no key for {}:{}; add the target's host key (ssh-keyscan -p {} {})",
                conn.name,
                path.display(),
                conn.host,
                conn.port,
                conn.port,
                conn.host
            ));
        }
        return Ok(keys.into_iter().map(|(_, k)| k).collect());
    }
    Err(format!(
        "connection \"{}\" has no pinned host key (host_key or known_hosts)",
        conn.name
    ))
}

/// Client-side handler: only checks the target's host key.
pub struct TargetHandler {
    pinned: Vec<PublicKey>,
    /// Set when the target presented an unexpected key.
    mismatch: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = key.public_key();
        if self
            .pinned
            .iter()
            .any(|k| k.key_data() == presented.key_data())
        {
            return Ok(true);
        }
        let shown = presented
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string();
        if let Ok(mut m) = self.mismatch.lock() {
            *m = Some(shown);
        }
        Ok(false)
    }
}

/// A logged-in connection to the target.
pub type Target = client::Handle<TargetHandler>;

/// Connect and log in to `conn`'s target.
pub async fn connect(conn: &ConnectionConfig) -> Result<Target, String> {
    let pinned = pinned_keys(conn)?;
    let mismatch = Arc::new(std::sync::Mutex::new(None));
    let handler = TargetHandler {
        pinned,
        mismatch: mismatch.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    });
    let addr = (conn.host.as_str(), conn.port);
    let connecting = client::connect(config, addr, handler);
    let mut handle = match tokio::time::timeout(Duration::from_secs(15), connecting).await {
        Err(_) => {
            return Err(format!(
                "{}:{} did not answer within 15 s",
                conn.host, conn.port
            ))
        }
        Ok(Err(e)) => {
            if let Some(fp) = mismatch.lock().ok().and_then(|m| m.clone()) {
                return Err(format!(
                    "the target {}:{} presented host key {fp}, which is not the one configured for connection \"{}\"; refusing to connect (if the host key really changed, update host_key/known_hosts)",
                    conn.host, conn.port, conn.name
                ));
            }
            return Err(format!("connecting to {}:{}: {e}", conn.host, conn.port));
        }
        Ok(Ok(h)) => h,
    };
    let result = if let Some(path) = &conn.key_file {
        let key = russh::keys::load_secret_key(path, None)
            .map_err(|e| format!("reading key_file {}: {e}", path.display()))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| e.to_string())?
            .flatten();
        handle
            .authenticate_publickey(&conn.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
    } else {
        let password = conn
            .credential()?
            .ok_or_else(|| format!("connection \"{}\" has no credential", conn.name))?;
        handle
            .authenticate_password(&conn.user, password.expose())
            .await
    };
    match result {
        Ok(r) if r.success() => Ok(handle),
        Ok(_) => Err(format!(
            "the target refused the gateway's login as \"{}\"; check the connection's credential",
            conn.user
        )),
        Err(e) => Err(format!("logging in to the target: {e}")),
    }
}
