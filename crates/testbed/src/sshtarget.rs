//! A throwaway OpenSSH sshd on 127.0.0.1 for the demo and the tests.
//!
//! It has its own host key, listens on a free port, lets one local user log
//! in with a password (the credential only the gateway holds) and serves
//! SFTP. sshd needs root (privilege separation, reading `/etc/shadow`), an
//! absolute path and `/run/sshd`; the user is created if missing.

use crate::{free_port, is_root};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's openssh-server puts the daemon.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; stopped when dropped.
pub struct SshTarget {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its host key as written in `known_hosts` (`ssh-ed25519 AAAA…`).
    pub host_key: String,
    /// The local user the gateway logs in as.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// That user's home folder.
    pub home: PathBuf,
    /// The folder holding the config, key and log.
    pub dir: PathBuf,
    /// This sshd's own authorized_keys file (the user's home is shared by
    /// every sshd started for that user, so keys go here instead).
    pub authorized_keys: PathBuf,
    child: Child,
}

/// Whether a throwaway sshd can be started here (installed, and root).
pub fn available() -> bool {
    Path::new(SSHD).exists() && is_root()
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl SshTarget {
    /// Start sshd in `dir` (created) for `user` with `password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Result<SshTarget> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} is not installed; apt-get install openssh-server");
        }
        if !is_root() {
            bail!("a throwaway sshd needs root (privilege separation and password logins)");
        }
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let dir = std::fs::canonicalize(dir)?;
        let exists = Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        if !exists {
            run(Command::new("useradd").args(["-m", "-s", "/bin/bash", user]))?;
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .context("running chpasswd")?;
        {
            use std::io::Write;
            let stdin = chpasswd.stdin.as_mut().context("chpasswd stdin")?;
            writeln!(stdin, "{user}:{password}")?;
        }
        if !chpasswd.wait()?.success() {
            bail!("chpasswd failed for {user}");
        }
        let home = PathBuf::from(
            run(Command::new("getent").args(["passwd", user]))?
                .trim()
                .split(':')
                .nth(5)
                .unwrap_or("/")
                .to_string(),
        );
        let key = dir.join("ssh_host_ed25519_key");
        if !key.exists() {
            run(Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "gatehouse-target",
                    "-f",
                ])
                .arg(&key))?;
        }
        let public = std::fs::read_to_string(dir.join("ssh_host_ed25519_key.pub"))?;
        let host_key = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let port = free_port()?;
        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, "")?;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PubkeyAuthentication yes\nPermitRootLogin no\nAllowUsers {user}\nStrictModes no\n\
                 AuthorizedKeysFile {authorized}\n\
                 AcceptEnv LANG LC_* GATEHOUSE_*\nPrintMotd no\nAllowTcpForwarding yes\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\nLogLevel VERBOSE\n",
                key = key.display(),
                pid = dir.join("sshd.pid").display(),
                authorized = authorized_keys.display(),
            ),
        )?;
        run(Command::new(SSHD).arg("-t").arg("-f").arg(&config))?;
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sshd")?;
        let target = SshTarget {
            port,
            host_key,
            user: user.to_string(),
            password: password.to_string(),
            home,
            dir,
            authorized_keys,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "sshd did not start listening on 127.0.0.1:{port}; see {}",
                    target.dir.join("sshd.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(target)
    }
}

impl SshTarget {
    /// Stop sshd once process `pid` exits (for targets held in statics,
    /// which are never dropped).
    pub fn stop_when_process_exits(&self, pid: u32) {
        let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill \"$2\" 2>/dev/null; rm -rf \"$3\"";
        crate::watcher::spawn(
            "sshd",
            script,
            vec![
                pid.to_string().into(),
                self.child.id().to_string().into(),
                self.dir.clone().into(),
            ],
        );
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
