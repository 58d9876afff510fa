//! State only the gateway's own user may read: folders 0700, files 0600.
//!
//! The state folder holds the audit store, approvals, recordings and keys.
//! What is in them is masked, but it still says who did what where, so
//! nobody else on the host gets to read it.
//!
//! Folders this creates are 0700. An existing folder is left as it is (it
//! may be shared on purpose, or not ours: `/tmp`, a group-owned mount) and
//! a warning says when others can enter it. Files are created 0600, and an
//! existing regular file that is wider (made by an older version) is
//! narrowed through its own handle, never through a symlink.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Create `dir` and its missing parents 0700. The empty path (the current
/// folder) and existing folders are left alone.
pub fn dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if dir.is_dir() {
        warn_if_open(dir);
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Open `path` with `options`, creating it 0600 (its folder 0700) when
/// missing. A symlink is refused, and an existing file that others may read
/// is narrowed to its owner.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    // A missing folder is created 0700; an existing one is not looked at
    // again (a file is opened far more often than its folder is made, and
    // `dir` says once, at start, when others can enter the state folder).
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        dir(parent)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: narrowing must never reach through a link.
        options.mode(0o600).custom_flags(NO_FOLLOW);
    }
    let file = options.open(path)?;
    narrow(&file)?;
    Ok(file)
}

/// Make sure the database at `path` exists and is 0600 (created empty when
/// missing), and narrow its `-wal` and `-shm` files if they exist, so the
/// store never starts out readable by others; SQLite gives the side files
/// it creates the database file's mode.
pub fn file(path: &Path) -> io::Result<()> {
    open(path, OpenOptions::new().write(true).create(true))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        if side.symlink_metadata().is_ok_and(|m| m.is_file()) {
            open(side, OpenOptions::new().write(true))?;
        }
    }
    Ok(())
}

/// Linux's `O_NOFOLLOW`.
#[cfg(unix)]
const NO_FOLLOW: i32 = 0o400_000;

/// Take group and other permissions off an open file.
fn narrow(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Say when others may enter a state folder that was already there.
fn warn_if_open(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(folder = %dir.display(), mode = format!("{mode:o}"), "others on this host can enter this state folder; chmod 700 it unless it is shared on purpose");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_state_is_private_and_old_files_are_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state/nested");
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        dir(Path::new("")).unwrap();
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

    #[test]
    fn links_and_shared_folders_are_not_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
        std::os::unix::fs::symlink(&victim, shared.join("db-wal")).unwrap();
        std::os::unix::fs::symlink(&victim, shared.join("link.db")).unwrap();
        file(&shared.join("db")).unwrap();
        assert!(
            file(&shared.join("link.db")).is_err(),
            "a symlinked store is refused"
        );
        assert_eq!(mode(&victim), 0o644, "nothing reached through a link");
        assert_eq!(
            std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
            0o2770,
            "an existing folder keeps its mode"
        );
    }
}
