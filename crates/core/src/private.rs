//! State only the gateway's own user may read: folders 0700, files 0600.
//!
//! The state folder holds the audit store, approvals, recordings and keys.
//! What is in them is masked, but it still says who did what where, so
//! nobody else on the host gets to read it. Files that already exist with
//! wider permissions (made by an older version) are narrowed on open.

use std::io;
use std::path::Path;

/// Create `dir` and its missing parents 0700; an existing `dir` is
/// narrowed to 0700.
pub fn dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    narrow(dir, 0o700)
}

/// Make sure `path` exists and is 0600 (created empty when missing), so a
/// database opened on it next never starts out readable by others;
/// SQLite gives its `-wal` and `-shm` files the database file's mode.
pub fn file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            dir(parent)?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?;
    narrow(path, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        if side.exists() {
            narrow(side, 0o600)?;
        }
    }
    Ok(())
}

/// Take group and other permissions off `path` (keeps what the owner has).
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_state_is_private_and_old_state_is_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state/nested");
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        let db = state.join("audit.db");
        file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);

        let old = tmp.path().join("old.db");
        std::fs::write(&old, b"x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wal = tmp.path().join("old.db-wal");
        std::fs::write(&wal, b"x").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o664)).unwrap();
        file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"x", "contents kept");
    }
}
