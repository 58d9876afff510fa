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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// A download that turned out not to be text (a NUL byte or bytes that
    /// are not UTF-8) on a connection that masks what it sends the user:
    /// it cannot be masked, so it is refused unless a rule naming this kind
    /// (`kinds = ["binary"]`) allows it.
    Binary,
}

/// Every shell kind, with the names rules use.
pub const SHELL_KINDS: [ShellKind; 5] = [
    ShellKind::Exec,
    ShellKind::Line,
    ShellKind::Upload,
    ShellKind::Download,
    ShellKind::Binary,
];

impl ShellKind {
    /// The name used in policy files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ShellKind::Exec => "exec",
            ShellKind::Line => "line",
            ShellKind::Upload => "upload",
            ShellKind::Download => "download",
            ShellKind::Binary => "binary",
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
    /// Each simple command of the line (split at `;`, `&&`, `||`, `|`,
    /// `&`, newlines and parentheses), quotes and a leading backslash
    /// removed, assignments and wrappers such as `env` or `command`
    /// skipped, and its program reduced to its base name: what keyword
    /// rules match, so `/usr/bin/sudo x` and `true; sudo x` are seen.
    pub commands: Vec<String>,
    /// The line runs things the gateway cannot read off its face
    /// (substitutions, `eval`, `sh -c`, a program from a variable): block
    /// and approve keyword rules then apply whatever the words say.
    pub opaque: bool,
}

/// Programs that run the rest of their arguments as the command.
const WRAPPERS: [&str; 8] = [
    "env", "command", "exec", "nohup", "time", "nice", "builtin", "stdbuf",
];

/// Shells and interpreters whose `-c` argument is a command line of its own.
const SHELLS: [&str; 9] = [
    "sh", "bash", "zsh", "dash", "ksh", "fish", "busybox", "su", "xargs",
];

/// Split a command line into simple commands (see [`ShellFacts::commands`]).
fn simple_commands(text: &str) -> (Vec<String>, bool) {
    // Command substitution (but not `$((…))` arithmetic) and process
    // substitution run commands the words do not show.
    let substitution = text
        .match_indices("$(")
        .any(|(i, _)| !text[i + 2..].starts_with('('));
    let mut opaque =
        substitution || text.contains('`') || text.contains("<(") || text.contains(">(");
    let mut pieces: Vec<String> = Vec::new();
    let mut piece = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => piece.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, ';' | '&' | '|' | '\n' | '(' | ')' | '{' | '}') => {
                pieces.push(std::mem::take(&mut piece))
            }
            (None, '\\') => {}
            (None, c) => piece.push(c),
        }
    }
    pieces.push(piece);
    if quote.is_some() {
        opaque = true;
    }
    let mut commands = Vec::new();
    for piece in pieces {
        let mut words = piece.split_whitespace().peekable();
        // Assignments and wrappers before the program.
        while let Some(w) = words.peek() {
            let assignment = w.contains('=') && !w.starts_with('=') && !w.starts_with('-');
            let wrapper = WRAPPERS.contains(&base_name(w).as_str());
            if assignment || wrapper {
                words.next();
                // `env -i`, `nice -n 5`: skip the wrapper's own options.
                while words.peek().is_some_and(|o| o.starts_with('-')) {
                    words.next();
                }
            } else {
                break;
            }
        }
        let Some(first) = words.next() else {
            continue;
        };
        let program = base_name(first);
        if program.contains('$') || program == "eval" || program == "source" || program == "." {
            opaque = true;
        }
        let rest: Vec<&str> = words.collect();
        if SHELLS.contains(&program.as_str())
            && rest.iter().any(|w| w.starts_with('-') && w.contains('c'))
        {
            opaque = true;
        }
        let mut command = program;
        for w in rest {
            command.push(' ');
            command.push_str(w);
        }
        commands.push(command);
    }
    (commands, opaque)
}

fn base_name(word: &str) -> String {
    word.rsplit('/').next().unwrap_or(word).to_string()
}

/// `scp [-r] [-p] [-d] [-v] -t|-f [--] PATH` exactly, as sshd's far side
/// runs it: anything else (a `;`, a second command, more paths) is an
/// ordinary exec, recorded and masked like any other.
fn scp_transfer(text: &str, words: &[String]) -> Option<(ShellKind, String)> {
    if text.contains(|c: char| ";&|<>$`\\'\"(){}\n*?".contains(c)) {
        return None;
    }
    let mut direction = None;
    let mut paths = Vec::new();
    let mut options_done = false;
    for w in words.iter().skip(1) {
        if !options_done && w == "--" {
            options_done = true;
        } else if !options_done && w.starts_with('-') {
            for flag in w.chars().skip(1) {
                match flag {
                    't' | 'f' if direction.is_some() => return None,
                    't' => direction = Some(ShellKind::Upload),
                    'f' => direction = Some(ShellKind::Download),
                    'r' | 'p' | 'd' | 'v' => {}
                    _ => return None,
                }
            }
        } else {
            paths.push(w.clone());
        }
    }
    match (direction, paths.as_slice()) {
        (Some(kind), [path]) => Some((kind, path.clone())),
        _ => None,
    }
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
    if kind == ShellKind::Exec && words.first().is_some_and(|w| w == "scp") {
        if let Some((k, p)) = scp_transfer(text, &words) {
            kind = k;
            path = Some(p);
        }
    }
    let (commands, opaque) = simple_commands(text);
    ShellFacts {
        kind,
        program,
        words,
        path,
        commands,
        opaque,
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
    fn keyword_rules_see_every_simple_command() {
        let f = classify("true; /usr/bin/sudo -n true && echo x", ShellKind::Exec);
        assert!(
            f.commands.iter().any(|c| c.starts_with("sudo -n")),
            "{:?}",
            f.commands
        );
        let f = classify("env FOO=1 'rm' -rf /tmp/x", ShellKind::Exec);
        assert!(
            f.commands.iter().any(|c| c.starts_with("rm -rf")),
            "{:?}",
            f.commands
        );
        assert!(!f.opaque);
        for opaque in [
            "x=su; ${x}do id",
            "$(echo sudo) id",
            "sh -c 'sudo id'",
            "eval sudo id",
            "`which sudo` id",
        ] {
            assert!(classify(opaque, ShellKind::Exec).opaque, "{opaque}");
        }
    }

    #[test]
    fn only_a_plain_scp_is_a_transfer() {
        for exec in [
            "scp -f /x >/dev/null 2>&1; cat customers-export.csv",
            "scp -t /a /b",
            "scp -f -t /a",
            "scp -f -o ProxyCommand=x /a",
        ] {
            assert_eq!(
                classify(exec, ShellKind::Exec).kind,
                ShellKind::Exec,
                "{exec}"
            );
        }
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
