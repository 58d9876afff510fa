//! Small file helpers for secrets kept in the state folder.

use std::io::Write;
use std::path::Path;

/// Write a file only its owner can read (keys, passwords).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = gatehouse_core::private::open(
        path,
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
    )?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Read a secret file, or create it with `len` random bytes (hex) if missing.
pub fn read_or_create_secret(path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut b = vec![0u8; len];
            rand::thread_rng().fill_bytes(&mut b);
            let hex = hex::encode(&b);
            write_private(path, hex.as_bytes())?;
            Ok(hex.into_bytes())
        }
        Err(e) => Err(e),
    }
}
