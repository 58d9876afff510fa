//! Reconstructing the lines a user submits in an interactive shell from
//! their keystrokes.
//!
//! This sees keys, not what the shell does with them: history recall, tab
//! completion, cursor movement and editing keys make the typed text differ
//! from the line that runs, so such lines are marked `edited` and the
//! recording's output is the evidence of what ran.

/// Keystroke accumulator for one shell channel.
#[derive(Default)]
pub struct LineBuf {
    text: Vec<u8>,
    edited: bool,
    esc: Esc,
}

#[derive(Default, PartialEq, Eq)]
enum Esc {
    #[default]
    None,
    Start,
    Csi,
}

/// What one input byte did.
pub enum Key {
    /// Part of the line (or editing it).
    Typed,
    /// Enter: the line as typed, and whether keys edited it in ways the
    /// gateway cannot follow.
    Submit(String, bool),
}

/// Longest line kept (the rest is dropped from the record, never from the session).
const MAX_LINE: usize = 16 * 1024;

impl LineBuf {
    /// Feed one byte from the client.
    pub fn feed(&mut self, b: u8) -> Key {
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' || b == b'O' {
                    Esc::Csi
                } else {
                    Esc::None
                };
                self.edited = true;
                return Key::Typed;
            }
            Esc::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.esc = Esc::None;
                }
                return Key::Typed;
            }
            Esc::None => {}
        }
        match b {
            // Enter, and Ctrl-O / Ctrl-J, which bash also runs the line on:
            // every key that can submit a line submits it here too.
            b'\r' | b'\n' | 0x0f => {
                let line = String::from_utf8_lossy(&self.text).into_owned();
                let edited = self.edited;
                self.text.clear();
                self.edited = false;
                return Key::Submit(line, edited);
            }
            0x7f | 0x08 => {
                // Drop one UTF-8 character.
                while let Some(c) = self.text.pop() {
                    if c & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            0x15 | 0x03 => {
                self.text.clear();
                self.edited = false;
            }
            0x1b => self.esc = Esc::Start,
            0x09 | 0x01 | 0x02 | 0x05 | 0x06 | 0x0b | 0x0e | 0x10 | 0x12 | 0x17 | 0x19 => {
                self.edited = true
            }
            b if b < 0x20 => {}
            b => {
                if self.text.len() < MAX_LINE {
                    self.text.push(b);
                }
            }
        }
        Key::Typed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(String, bool)> {
        let mut l = LineBuf::default();
        input
            .iter()
            .filter_map(|b| match l.feed(*b) {
                Key::Submit(s, e) => Some((s, e)),
                Key::Typed => None,
            })
            .collect()
    }

    #[test]
    fn typed_lines() {
        assert_eq!(lines(b"ls -la\r"), vec![("ls -la".to_string(), false)]);
        assert_eq!(lines(b"lx\x7fs\r"), vec![("ls".to_string(), false)]);
        assert_eq!(lines(b"junk\x15pwd\r"), vec![("pwd".to_string(), false)]);
        assert_eq!(lines(b"\x1b[Awho\r"), vec![("who".to_string(), true)]);
        assert_eq!(lines(b"ec\thi\r"), vec![("echi".to_string(), true)]);
    }
}
