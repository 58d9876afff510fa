//! A throwaway MariaDB server for `gatehouse demo` and the integration tests.
//!
//! It uses the system's `mariadb-install-db` and `mariadbd` (Debian's
//! `mariadb-server`), listens on 127.0.0.1 only, and lives in a temporary
//! folder removed when it stops. `root` logs in over the server's own Unix
//! socket with no password (the folder is private); the gateway gets an
//! account of its own with a password. When we are root, the server runs
//! as the `mysql` user through `runuser`, like the packaged service.

use crate::{free_port, is_root};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOT_FOUND: &str = "MariaDB server binaries not found; install them with `apt-get install mariadb-server mariadb-client` (Debian/Ubuntu)";
const SERVER_OS_USER: &str = "mysql";

/// How the gateway's account proves its password to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MariaDbAuth {
    /// `mysql_native_password` (MariaDB's default).
    Native,
    /// MariaDB's `ed25519` plugin.
    Ed25519,
}

/// A running throwaway MariaDB server.
pub struct MariaDbCluster {
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    socket: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    for n in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

impl MariaDbCluster {
    /// Whether the server binaries are installed.
    pub fn available() -> bool {
        find(&["mariadbd"]).is_some()
            && find(&["mariadb-install-db"]).is_some()
            && find(&["mariadb", "mysql"]).is_some()
    }

    /// Initialize a data folder and start a server on a free port.
    pub fn start() -> Result<MariaDbCluster> {
        Self::start_with(&[])
    }

    /// [`MariaDbCluster::start`] with extra server options (`--ssl-cert=…`).
    pub fn start_with(extra_args: &[String]) -> Result<MariaDbCluster> {
        let mariadbd = find(&["mariadbd"]).context(NOT_FOUND)?;
        let install = find(&["mariadb-install-db"]).context(NOT_FOUND)?;
        let root = tempfile::Builder::new()
            .prefix("gatehouse-mariadb-")
            .tempdir_in("/tmp")
            .context("creating the throwaway MariaDB folder")?;
        let root_path = root.path().to_path_buf();
        let data = root_path.join("data");
        let socket = root_path.join("mysqld.sock");
        // The server's own temporary folder: /tmp is shared with whatever
        // else runs on the machine (other servers, other test runs).
        let tmp = root_path.join("tmp");
        std::fs::create_dir(&tmp).context("creating the MariaDB temporary folder")?;
        let as_root = is_root();
        if as_root {
            let ok = Command::new("chown")
                .arg("-R")
                .arg(format!("{SERVER_OS_USER}:{SERVER_OS_USER}"))
                .arg(&root_path)
                .status()
                .context("chown the MariaDB folder")?;
            if !ok.success() {
                bail!(
                    "could not hand {} to the {SERVER_OS_USER} user (is mariadb-server installed?)",
                    root_path.display()
                );
            }
        }
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .current_dir("/tmp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if as_root {
            cmd.arg(format!("--user={SERVER_OS_USER}"));
        }
        let out = cmd.output().context("running mariadb-install-db")?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let mut server = if as_root {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(SERVER_OS_USER).arg("--").arg(&mariadbd);
            c
        } else {
            Command::new(&mariadbd)
        };
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                root_path.join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                root_path.join("err.log").display()
            ))
            .arg("--skip-name-resolve")
            .arg("--max-connections=300")
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .args(extra_args)
            .current_dir("/tmp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = server.spawn().context("starting mariadbd")?;
        let mut cluster = MariaDbCluster {
            root: Some(root),
            root_path,
            socket,
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if cluster.sql("", "SELECT 1").is_ok() {
                break;
            }
            if let Some(c) = cluster.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("mariadbd exited ({status}): {}", cluster.log_tail(20));
                }
            }
            if Instant::now() > deadline {
                bail!("mariadbd did not start in 60s: {}", cluster.log_tail(20));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's folder.
    pub fn dir(&self) -> &Path {
        &self.root_path
    }

    /// Run SQL as root over the socket (in database `db` unless empty);
    /// returns the tab-separated output.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String> {
        let client = find(&["mariadb", "mysql"]).context(NOT_FOUND)?;
        let mut cmd = Command::new(client);
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("-uroot")
            .arg("--batch")
            .arg("--skip-column-names");
        if !db.is_empty() {
            cmd.arg(db);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running the mariadb client")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Create database `db` and an account `user` that may use only it.
    pub fn create_user_and_database(
        &self,
        user: &str,
        password: &str,
        db: &str,
        auth: MariaDbAuth,
    ) -> Result<()> {
        let pw = password.replace('\\', "\\\\").replace('\'', "''");
        let identified = match auth {
            MariaDbAuth::Native => format!("IDENTIFIED BY '{pw}'"),
            MariaDbAuth::Ed25519 => {
                // Loading the plugin twice is an error; ignore "already".
                let _ = self.sql("", "INSTALL SONAME 'auth_ed25519'");
                format!("IDENTIFIED VIA ed25519 USING PASSWORD('{pw}')")
            }
        };
        self.sql(
            "",
            &format!(
                "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;\n\
                 CREATE USER '{user}'@'127.0.0.1' {identified};\n\
                 CREATE USER '{user}'@'localhost' {identified};\n\
                 GRANT ALL ON `{db}`.* TO '{user}'@'127.0.0.1';\n\
                 GRANT ALL ON `{db}`.* TO '{user}'@'localhost';"
            ),
        )?;
        Ok(())
    }

    /// The last lines of the server's error log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.root_path.join("err.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop the server and remove its folder; idempotent, best effort.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.sql("", "SHUTDOWN");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }

    /// Stop the server and remove its folder once process `pid` exits (for
    /// servers kept in statics, which are never dropped).
    pub fn stop_when_process_exits(&self, pid: u32) {
        const SCRIPT: &str = r#"
pid=$1 root=$2
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
if [ -f "$root/mysqld.pid" ]; then
  kill "$(cat "$root/mysqld.pid")" 2>/dev/null
  for i in $(seq 1 40); do [ -f "$root/mysqld.pid" ] || break; sleep 0.5; done
fi
cd / && rm -rf "$root"
"#;
        crate::watcher::spawn(
            "MariaDB",
            SCRIPT,
            vec![pid.to_string().into(), self.root_path.clone().into()],
        );
    }
}

impl Drop for MariaDbCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
