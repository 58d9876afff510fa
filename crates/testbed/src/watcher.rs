//! Cleaning up after a process that never drops its servers.
//!
//! Servers kept in statics (one per test binary) are never dropped, so a
//! small shell script waits for the process to exit and then stops the
//! server and removes its folder.

use std::ffi::OsString;
use std::process::{Command, Stdio};

/// Run `script` (POSIX sh, its arguments `$1`…) in a session of its own,
/// so a Ctrl-C aimed at the watched process does not kill it too. A failure
/// to start it is logged with `what`: the server then has to be stopped by
/// hand.
pub(crate) fn spawn(what: &str, script: &str, args: Vec<OsString>) {
    let run = |program: &str, leading: &[&str]| {
        Command::new(program)
            .args(leading)
            .arg("-c")
            .arg(script)
            .arg(format!("gatehouse-{what}-watcher"))
            .args(&args)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    match run("setsid", &["sh"]).or_else(|_| run("sh", &[])) {
        // Reap it if it ever finishes while we are still alive.
        Ok(mut child) => {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not start the throwaway {what}'s exit watcher; stop it by hand")
        }
    }
}
