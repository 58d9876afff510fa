//! What an SSH session does besides commands: files sent over SFTP or
//! scp (and how a download on a masking connection was treated), shells
//! opened, forwardings asked for.

use crate::mask::MaskCounts;
use serde::{Deserialize, Serialize};

/// `ssh.shell`: an interactive shell opened on a channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShellOpened {
    /// `ssh`.
    #[serde(default)]
    pub protocol: String,
    /// The channel.
    #[serde(default)]
    pub channel: u32,
    /// The terminal asked for, if any.
    #[serde(default)]
    pub pty: Option<Pty>,
    /// Environment variables the client sent (names and values as given).
    #[serde(default)]
    pub env: Vec<String>,
}

/// A terminal asked for with a shell.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pty {
    /// `TERM`.
    pub term: String,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// `ssh.forward`: a port or agent forwarding asked for, and whether the
/// connection allows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Forward {
    /// `direct-tcpip`, `tcpip-forward` or `agent`.
    #[serde(default)]
    pub kind: String,
    /// Where to, for port forwardings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Whether it was allowed.
    #[serde(default)]
    pub allowed: bool,
}

/// `file.transfer`: one finished transfer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileTransfer {
    /// `sftp` or `scp`.
    #[serde(default)]
    pub protocol: String,
    /// The SSH channel it ran on.
    #[serde(default)]
    pub channel: u32,
    /// The file.
    #[serde(default)]
    pub path: String,
    /// `upload` or `download`.
    #[serde(default)]
    pub direction: String,
    /// Bytes read from the side that sent it.
    #[serde(default)]
    pub bytes: u64,
    /// For a download on a masking connection: what was done to it.
    #[serde(default)]
    pub masking: Option<TransferMasking>,
    /// The path the client asked for (`scp -f PATH`), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
}

/// How a download on a masking connection was treated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransferMasking {
    /// `masked`, `passed` (a binary file a rule allows) or `refused`.
    #[serde(default)]
    pub result: String,
    /// Values masked, by kind.
    #[serde(default)]
    pub masked: MaskCounts,
    /// Bytes the client received.
    #[serde(default)]
    pub bytes_sent: u64,
    /// The rule that passed or refused a binary file.
    #[serde(default)]
    pub rule: Option<String>,
    /// Why it was passed or refused.
    #[serde(default)]
    pub reason: Option<String>,
}
