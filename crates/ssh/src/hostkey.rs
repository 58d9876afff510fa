//! The gateway's own SSH host key, kept in the state folder so clients'
//! `known_hosts` entries stay valid across restarts.

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use std::path::Path;

/// Load the Ed25519 host key at `path`, creating it (mode 0600) if absent.
pub fn load_or_create(path: &Path) -> Result<PrivateKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
            format!(
                "the SSH host key {} is not a valid OpenSSH private key ({e}); move it away to have a new one made",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| format!("encoding the SSH host key: {e}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            write_private(path, text.as_bytes())
                .map_err(|e| format!("writing the SSH host key {}: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("reading the SSH host key {}: {e}", path.display())),
    }
}

/// The public half as a `known_hosts` line body (`ssh-ed25519 AAAA…`).
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_key_persists() {
        let dir = std::env::temp_dir().join(format!("gh-hostkey-{}", std::process::id()));
        let path = dir.join("ssh_host_ed25519_key");
        let _ = std::fs::remove_file(&path);
        let a = super::load_or_create(&path).unwrap();
        let b = super::load_or_create(&path).unwrap();
        assert_eq!(super::public_line(&a), super::public_line(&b));
        assert!(super::public_line(&a).starts_with("ssh-ed25519 "));
        let _ = std::fs::remove_dir_all(dir);
    }
}
