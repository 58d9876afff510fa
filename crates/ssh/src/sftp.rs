//! Just enough of the SFTP protocol (draft-ietf-secsh-filexfer-02, what
//! OpenSSH speaks) to record which files move and how many bytes, and to
//! refuse an open by rule.
//!
//! The gateway relays SFTP packets unchanged; it frames them (`u32` length,
//! type byte, request id) and looks inside OPEN, READ/DATA, WRITE and CLOSE.
//! Packets are forwarded whole, so a refused OPEN never reaches the target.
//! On a masking connection the READs of open files are answered by the
//! gateway itself instead ([`crate::download`]).

use std::collections::HashMap;

/// Largest SFTP packet accepted (OpenSSH's own limit is 256 KiB).
pub const MAX_PACKET: usize = 256 * 1024 + 1024;

const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_SETSTAT: u8 = 9;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_RENAME: u8 = 18;
const FXP_SYMLINK: u8 = 20;
const FXP_EXTENDED: u8 = 200;
const FXF_READ: u32 = 0x1;
const FXF_WRITE: u32 = 0x2;
/// APPEND, CREAT, TRUNC: each changes the file even without WRITE.
const FXF_CHANGES: u32 = 0x4 | 0x8 | 0x10;
const FX_PERMISSION_DENIED: u32 = 3;

/// Splits a byte stream into whole SFTP packets.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Add bytes; return the whole packets now available (with their
    /// length prefix), or an error for an oversized packet.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 4 {
                break;
            }
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if len > MAX_PACKET {
                return Err(format!(
                    "an SFTP packet of {len} bytes is larger than allowed"
                ));
            }
            if self.buf.len() < 4 + len {
                break;
            }
            out.push(self.buf.drain(..4 + len).collect());
        }
        Ok(out)
    }
}

/// Reads SSH wire strings and integers from a packet body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.0.get(..4)?;
        self.0 = &self.0[4..];
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let hi = self.u32()? as u64;
        let lo = self.u32()? as u64;
        Some(hi << 32 | lo)
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let s = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(s)
    }
}

/// A file opened through SFTP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    /// Path as the client named it.
    pub path: String,
    /// `upload` (opened for writing) or `download` (for reading).
    pub direction: &'static str,
    /// Bytes written to or read from it.
    pub bytes: u64,
}

/// What the client asked for, once a packet from it is read.
pub enum ClientRequest {
    /// Open `path` (upload if writing); the request id answers a refusal.
    Open {
        /// Request id.
        id: u32,
        /// Path.
        path: String,
        /// Opened for writing.
        write: bool,
        /// Opened for reading (possibly as well as writing).
        read: bool,
    },
    /// Change the file tree: remove, mkdir, rmdir, setstat, rename,
    /// symlink, hard link. Judged like an upload to every path involved.
    Change {
        /// Request id.
        id: u32,
        /// The operation (`rename`, `remove`, …).
        op: &'static str,
        /// The paths it touches, normalised.
        paths: Vec<String>,
    },
    /// Anything else: forward.
    Other,
}

/// `a/./b/../c` → `a/c`, so path rules see where a request really points
/// (`/tmp/../etc/x` is `/etc/x`).
pub fn normalise(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Tracks open files across both directions of one SFTP channel.
#[derive(Default)]
pub struct Tracker {
    pending_open: HashMap<u32, Transfer>,
    pending_read: HashMap<u32, Vec<u8>>,
    open: HashMap<Vec<u8>, Transfer>,
}

impl Tracker {
    /// Look at a packet from the client (with its length prefix).
    pub fn client_packet(&mut self, packet: &[u8]) -> ClientRequest {
        let mut r = Reader(packet.get(4..).unwrap_or_default());
        let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
            return ClientRequest::Other;
        };
        match kind {
            FXP_OPEN => {
                let Some(path) = r.string() else {
                    return ClientRequest::Other;
                };
                let flags = r.u32().unwrap_or(0);
                let write = flags & (FXF_WRITE | FXF_CHANGES) != 0;
                let path = normalise(&String::from_utf8_lossy(path));
                // Every open is tracked: without READ or WRITE the server
                // still opens the file read-only.
                self.pending_open.insert(
                    id,
                    Transfer {
                        path: path.clone(),
                        direction: if write { "upload" } else { "download" },
                        bytes: 0,
                    },
                );
                ClientRequest::Open {
                    id,
                    path,
                    write,
                    read: flags & FXF_READ != 0,
                }
            }
            FXP_WRITE => {
                if let (Some(handle), Some(_offset), Some(data)) = (r.string(), r.u64(), r.string())
                {
                    if let Some(t) = self.open.get_mut(handle) {
                        t.bytes += data.len() as u64;
                    }
                }
                ClientRequest::Other
            }
            FXP_READ => {
                if let Some(handle) = r.string() {
                    self.pending_read.insert(id, handle.to_vec());
                }
                ClientRequest::Other
            }
            FXP_REMOVE | FXP_MKDIR | FXP_RMDIR | FXP_SETSTAT => {
                let op = match kind {
                    FXP_REMOVE => "remove",
                    FXP_MKDIR => "mkdir",
                    FXP_RMDIR => "rmdir",
                    _ => "setstat",
                };
                match r.string() {
                    Some(p) => ClientRequest::Change {
                        id,
                        op,
                        paths: vec![normalise(&String::from_utf8_lossy(p))],
                    },
                    None => ClientRequest::Other,
                }
            }
            FXP_RENAME | FXP_SYMLINK => two_paths(
                id,
                if kind == FXP_RENAME {
                    "rename"
                } else {
                    "symlink"
                },
                &mut r,
            ),
            FXP_EXTENDED => match r.string() {
                Some(b"posix-rename@openssh.com") => two_paths(id, "rename", &mut r),
                Some(b"hardlink@openssh.com") => two_paths(id, "hardlink", &mut r),
                _ => ClientRequest::Other,
            },
            _ => ClientRequest::Other,
        }
    }

    /// Look at a packet from the client that closes a handle: the finished
    /// transfer, if it was a file.
    pub fn closed(&mut self, packet: &[u8]) -> Option<Transfer> {
        let mut r = Reader(packet.get(4..)?);
        if r.u8()? != FXP_CLOSE {
            return None;
        }
        let _id = r.u32()?;
        let handle = r.string()?;
        self.open.remove(handle)
    }

    /// Look at a packet from the target (with its length prefix); a file
    /// just opened is returned with its handle.
    pub fn target_packet(&mut self, packet: &[u8]) -> Option<(Vec<u8>, Transfer)> {
        let mut r = Reader(packet.get(4..).unwrap_or_default());
        let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
            return None;
        };
        match kind {
            FXP_HANDLE => {
                if let (Some(t), Some(handle)) = (self.pending_open.remove(&id), r.string()) {
                    self.open.insert(handle.to_vec(), t.clone());
                    return Some((handle.to_vec(), t));
                }
            }
            FXP_DATA => {
                if let (Some(handle), Some(data)) = (self.pending_read.remove(&id), r.string()) {
                    if let Some(t) = self.open.get_mut(&handle) {
                        t.bytes += data.len() as u64;
                    }
                }
            }
            FXP_STATUS => {
                self.pending_open.remove(&id);
                self.pending_read.remove(&id);
            }
            _ => {}
        }
        None
    }

    /// Files still open when the channel ends.
    pub fn unfinished(&mut self) -> Vec<Transfer> {
        self.open.drain().map(|(_, t)| t).collect()
    }
}

/// A change naming two paths (rename, symlink, hard link).
fn two_paths(id: u32, op: &'static str, r: &mut Reader<'_>) -> ClientRequest {
    match (r.string(), r.string()) {
        (Some(a), Some(b)) => ClientRequest::Change {
            id,
            op,
            paths: vec![
                normalise(&String::from_utf8_lossy(a)),
                normalise(&String::from_utf8_lossy(b)),
            ],
        },
        _ => ClientRequest::Other,
    }
}

/// An SSH_FXP_STATUS permission-denied answer to request `id`.
pub fn permission_denied(id: u32, message: &str) -> Vec<u8> {
    let mut body = vec![FXP_STATUS];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&FX_PERMISSION_DENIED.to_be_bytes());
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    body.extend_from_slice(&0u32.to_be_bytes()); // language tag ""
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, rest: &[u8]) -> Vec<u8> {
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(rest);
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut out = (s.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(s);
        out
    }

    #[test]
    fn tracks_an_upload_split_across_chunks() {
        let mut t = Tracker::default();
        let mut open = string(b"/tmp/up.txt");
        open.extend_from_slice(&(FXF_WRITE | 0x8).to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        let open = packet(FXP_OPEN, 7, &open);
        let mut f = Framer::default();
        assert!(f.push(&open[..5]).unwrap().is_empty());
        let got = f.push(&open[5..]).unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(
            t.client_packet(&got[0]),
            ClientRequest::Open {
                id: 7,
                write: true,
                ..
            }
        ));
        t.target_packet(&packet(FXP_HANDLE, 7, &string(b"h1")));
        let mut w = string(b"h1");
        w.extend_from_slice(&0u64.to_be_bytes());
        w.extend_from_slice(&string(b"hello"));
        t.client_packet(&packet(FXP_WRITE, 8, &w));
        let done = t.closed(&packet(FXP_CLOSE, 9, &string(b"h1"))).unwrap();
        assert_eq!(done.path, "/tmp/up.txt");
        assert_eq!(done.direction, "upload");
        assert_eq!(done.bytes, 5);
        assert_eq!(permission_denied(3, "no").len(), 4 + 1 + 4 + 4 + 4 + 2 + 4);
    }

    #[test]
    fn paths_are_normalised_and_tree_changes_seen() {
        assert_eq!(normalise("/tmp/../etc/hostname"), "/etc/hostname");
        assert_eq!(normalise("/../../etc"), "/etc");
        assert_eq!(normalise("a/./b/../c"), "a/c");
        assert_eq!(normalise("../x"), "../x");
        let mut t = Tracker::default();
        let mut body = string(b"/tmp/up");
        body.extend(string(b"/tmp/../etc/cron.d/x"));
        match t.client_packet(&packet(FXP_RENAME, 9, &body)) {
            ClientRequest::Change { id, op, paths } => {
                assert_eq!((id, op), (9, "rename"));
                assert_eq!(paths, vec!["/tmp/up", "/etc/cron.d/x"]);
            }
            _ => panic!("a rename is a change"),
        }
    }

    #[test]
    fn an_open_without_read_or_write_is_a_download() {
        // sftp-server opens it read-only; it must not dodge download rules
        // or masking.
        let mut t = Tracker::default();
        let mut open = string(b"/srv/customers.csv");
        open.extend_from_slice(&0u32.to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        assert!(matches!(
            t.client_packet(&packet(FXP_OPEN, 1, &open)),
            ClientRequest::Open {
                write: false,
                read: false,
                ..
            }
        ));
        let (handle, opened) = t
            .target_packet(&packet(FXP_HANDLE, 1, &string(b"h")))
            .unwrap();
        assert_eq!(
            (handle.as_slice(), opened.direction),
            (&b"h"[..], "download")
        );
    }

    #[test]
    fn oversized_packets_are_refused() {
        let mut f = Framer::default();
        assert!(f.push(&u32::MAX.to_be_bytes()).is_err());
    }
}
