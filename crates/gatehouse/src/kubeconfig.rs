//! kubeconfig files that point kubectl at the gateway.
//!
//! A user who may reach a Kubernetes connection gets a kubeconfig whose
//! server is the gateway (`https://gateway:port/<connection>`) and whose
//! credential is their own token; the cluster's real credential never leaves
//! the gateway. Every value is written as a YAML double-quoted scalar with
//! anything unusual escaped, so a connection or user name cannot change the
//! file's structure.

use base64::Engine as _;
use std::fmt::Write as _;

/// Renders a kubeconfig with one cluster, one user and one context (named
/// after the cluster) selected as the current context. `ca_pem`, when
/// given, is embedded as `certificate-authority-data` so kubectl trusts the
/// gateway's certificate without a separate file.
pub fn render(
    cluster_name: &str,
    server_url: &str,
    ca_pem: Option<&str>,
    user_name: &str,
    token: &str,
) -> String {
    let cluster = quote(cluster_name);
    let user = quote(user_name);
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Config\nclusters:\n");
    let _ = writeln!(out, "- name: {cluster}\n  cluster:");
    let _ = writeln!(out, "    server: {}", quote(server_url));
    if let Some(pem) = ca_pem {
        let data = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        let _ = writeln!(out, "    certificate-authority-data: {}", quote(&data));
    }
    out.push_str("users:\n");
    let _ = writeln!(out, "- name: {user}\n  user:");
    let _ = writeln!(out, "    token: {}", quote(token));
    out.push_str("contexts:\n");
    let _ = writeln!(out, "- name: {cluster}\n  context:");
    let _ = writeln!(out, "    cluster: {cluster}\n    user: {user}");
    let _ = writeln!(out, "current-context: {cluster}");
    out.push_str("preferences: {}\n");
    out
}

/// A YAML double-quoted scalar. Besides `"` and `\`, every character a YAML
/// 1.1 parser could take for a line break or that is not printable is
/// escaped, so the value reads back byte for byte.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn renders_a_complete_kubeconfig() {
        let yaml = render(
            "gatehouse-prod",
            "https://127.0.0.1:8443/prod",
            Some(CA),
            "alice@example.com",
            "eyJhbGciOi.x.y",
        );
        let ca_b64 = base64::engine::general_purpose::STANDARD.encode(CA);
        let want = format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: "gatehouse-prod"
  cluster:
    server: "https://127.0.0.1:8443/prod"
    certificate-authority-data: "{ca_b64}"
users:
- name: "alice@example.com"
  user:
    token: "eyJhbGciOi.x.y"
contexts:
- name: "gatehouse-prod"
  context:
    cluster: "gatehouse-prod"
    user: "alice@example.com"
current-context: "gatehouse-prod"
preferences: {{}}
"#
        );
        assert_eq!(yaml, want);
    }

    #[test]
    fn without_a_ca_there_is_no_ca_data() {
        let yaml = render("c", "https://gw/c", None, "u", "t");
        assert!(!yaml.contains("certificate-authority"));
        assert!(yaml.contains("    server: \"https://gw/c\"\n"));
    }

    #[test]
    fn quoting_cannot_break_the_structure() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny: 1"), r#""x\ny: 1""#);
        assert_eq!(quote("\u{0}\u{1b}\u{7f}\u{85}"), r#""\x00\x1b\x7f\x85""#);
        assert_eq!(quote("a\u{2028}b\u{feff}"), r#""a\u2028b\ufeff""#);
        assert_eq!(quote("héllo ✓"), "\"héllo ✓\"");
        let yaml = render("c\n- name: evil", "https://gw", None, "u: x", "t#1");
        assert_eq!(yaml.lines().filter(|l| l.starts_with("- name:")).count(), 3);
    }

    /// The file is valid for kubectl itself, values read back exactly.
    /// Skipped where no kubectl is installed.
    #[test]
    fn kubectl_reads_it_back() {
        let Some(kubectl) = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            eprintln!("no kubectl; skipped");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let cluster = "gw \"prod\"\\ #1: {x}";
        let user = "alice@example.com\n- name: evil";
        let token = "tok'en\"with\u{2028}odd\tchars";
        std::fs::write(
            &path,
            render(
                cluster,
                "https://127.0.0.1:8443/prod",
                Some(CA),
                user,
                token,
            ),
        )
        .unwrap();
        let out = std::process::Command::new(kubectl)
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(&path)
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(view["current-context"], cluster);
        assert_eq!(view["clusters"][0]["name"], cluster);
        assert_eq!(
            view["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:8443/prod"
        );
        let ca = view["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let ca = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap();
        assert_eq!(ca, CA.as_bytes());
        assert_eq!(view["users"][0]["name"], user);
        assert_eq!(view["users"][0]["user"]["token"], token);
        assert_eq!(view["contexts"][0]["context"]["user"], user);
        assert_eq!(view["contexts"][0]["context"]["cluster"], cluster);
    }
}
