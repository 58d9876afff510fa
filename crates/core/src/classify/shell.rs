//! The classify stage for shell commands (SSH exec requests, interactive
//! lines, file transfers).
//!
//! Shell is not parsed the way SQL is: a command line can run anything
//! through variables, aliases, `eval` or a script. What is classified here
//! is what the line says on its face — its kind and its leading program —
//! which is what deny-list rules (`rm -rf /`, `shutdown`, `curl … | sh`)
//! match on. Rules match the whole text with `pattern`, so
//! `rm -rf` also matches after `;`, `&&` or inside `sh -c '…'`.

use serde::Serialize;

/// What kind of shell-side command this is (`kinds = ["exec"]` in rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellKind {
    /// An SSH exec request (`ssh host 'cmd'`): one command, decided before
    /// it reaches the target.
    Exec,
    /// A line typed in an interactive shell (recorded; decided where the
    /// gateway can, see the README's limits).
    Line,
    /// A file sent to the target (scp -t, SFTP open for writing).
    Upload,
    /// A file fetched from the target (scp -f, SFTP open for reading).
    Download,
}

/// Every shell kind, with the names rules use.
pub const SHELL_KINDS: [ShellKind; 4] = [
    ShellKind::Exec,
    ShellKind::Line,
    ShellKind::Upload,
    ShellKind::Download,
];

impl ShellKind {
    /// The name used in policy files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ShellKind::Exec => "exec",
            ShellKind::Line => "line",
            ShellKind::Upload => "upload",
            ShellKind::Download => "download",
        }
    }

    /// Parse a policy-file name.
    pub fn from_name(name: &str) -> Option<ShellKind> {
        SHELL_KINDS.iter().copied().find(|k| k.as_str() == name)
    }
}

/// Facts about one shell command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShellFacts {
    /// Its kind.
    pub kind: ShellKind,
    /// The leading program, past `sudo`/`env`/assignments is not attempted:
    /// `sudo rm -rf /` has program `sudo` (rules on `sudo` hold it).
    pub program: String,
    /// The words of the line, split on whitespace (quotes are not
    /// interpreted: this is for display and keyword rules only).
    pub words: Vec<String>,
    /// For scp and SFTP: the path transferred.
    pub path: Option<String>,
}

/// Classify a shell command line.
pub fn classify(text: &str, kind: ShellKind) -> ShellFacts {
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let program = words
        .first()
        .map(|w| w.rsplit('/').next().unwrap_or(w).to_string())
        .unwrap_or_default();
    let mut kind = kind;
    let mut path = None;
    // scp runs as `scp [-r] [-p] [-d] -t|-f -- PATH` on the far side.
    if kind == ShellKind::Exec && program == "scp" {
        let sink = words.iter().any(|w| w.starts_with('-') && w.contains('t'));
        let source = words.iter().any(|w| w.starts_with('-') && w.contains('f'));
        if sink != source {
            kind = if sink {
                ShellKind::Upload
            } else {
                ShellKind::Download
            };
            path = words.iter().skip(1).rfind(|w| !w.starts_with('-')).cloned();
        }
    }
    ShellFacts {
        kind,
        program,
        words,
        path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_program_and_words() {
        let f = classify("sudo systemctl restart nginx", ShellKind::Exec);
        assert_eq!(f.program, "sudo");
        assert_eq!(f.words.len(), 4);
        assert_eq!(f.kind, ShellKind::Exec);
        assert_eq!(classify("/bin/rm -rf /", ShellKind::Exec).program, "rm");
    }

    #[test]
    fn scp_directions() {
        let up = classify("scp -t /tmp/x", ShellKind::Exec);
        assert_eq!(up.kind, ShellKind::Upload);
        assert_eq!(up.path.as_deref(), Some("/tmp/x"));
        let down = classify("scp -f -- /etc/hosts", ShellKind::Exec);
        assert_eq!(down.kind, ShellKind::Download);
        assert_eq!(down.path.as_deref(), Some("/etc/hosts"));
        assert_eq!(classify("scp", ShellKind::Exec).kind, ShellKind::Exec);
    }
}
