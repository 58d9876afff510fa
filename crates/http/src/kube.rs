//! Kubernetes request attributes, derived the way the API server derives them.
//!
//! Policy, approvals and the audit trail speak in the API server's own terms
//! (verb, API group, namespace, resource, subresource, name), so a rule
//! written as "delete on namespaces needs approval" means exactly what it
//! would mean in RBAC. [`RequestInfo::parse`] follows the API server's
//! request-info rules: only `/api/{version}/…` and
//! `/apis/{group}/{version}/…` with at least one more segment are resource
//! requests; everything else (`/version`, `/healthz`, `/api`, `/apis`,
//! `/api/v1`) is a non-resource request whose verb is the lower-case HTTP
//! method. The path given here has already lost the gateway's connection
//! prefix.

use std::fmt::Write as _;

/// Why a Kubernetes request path or query could not be understood; the
/// adapter fails closed on these instead of guessing what a request does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestInfoError {
    /// `/api/v1/watch` or `/api/v1/proxy` with nothing after the verb; the
    /// API server rejects these too.
    #[error("cannot tell resource and namespace from {0:?}")]
    MissingResource(String),
    /// A path with empty, `.` or `..` segments. The API server and the
    /// routers in front of it may read such a path differently than this
    /// parser, so the gateway refuses it rather than judge the wrong thing.
    #[error("ambiguous path {0:?}")]
    AmbiguousPath(String),
    /// A `ports=` value of a port-forward request that is not a port.
    #[error("invalid port {0:?}")]
    InvalidPort(String),
}

/// The attributes of one Kubernetes API request, as authorization sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `true` for `/api/...` and `/apis/...` requests naming a resource;
    /// `false` for discovery, `/version`, `/healthz` and the like.
    pub is_resource_request: bool,
    /// The decoded request path, for non-resource policy rules and the log.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `proxy`; for non-resource requests the lower-case
    /// HTTP method. Empty for a resource request with an unknown method.
    pub verb: String,
    /// `api` or `apis` (empty for non-resource requests).
    pub api_prefix: String,
    /// The API group; `""` is the core group (`/api/v1`).
    pub api_group: String,
    /// The API version, such as `v1`.
    pub api_version: String,
    /// The namespace, `""` for cluster-scoped requests. For
    /// `/api/v1/namespaces/prod` this is `prod`, as in the API server.
    pub namespace: String,
    /// The resource, such as `pods`.
    pub resource: String,
    /// The subresource, such as `exec`, `log` or `status` (may be empty).
    pub subresource: String,
    /// The object's name; empty for collections. A list or watch whose field
    /// selector pins `metadata.name` carries that name, as in the API server.
    pub name: String,
    /// The path segments from the resource on (`pods/web-1/exec`), so a
    /// proxy request's remaining path stays visible.
    pub parts: Vec<String>,
    /// The exec/attach options, for `pods/exec` and `pods/attach`.
    pub exec: Option<ExecRequest>,
    /// The ports asked for by a `pods/portforward` request.
    pub ports: Vec<u16>,
}

/// The options of a `pods/exec` or `pods/attach` request, from its query:
/// what an approver must see before a shell is opened in a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    /// The command and its arguments (repeated `command=` parameters, in
    /// order). Empty for attach.
    pub command: Vec<String>,
    /// The container; empty means the pod's default container.
    pub container: Option<String>,
    /// Whether the client sends standard input.
    pub stdin: bool,
    /// Whether the client wants standard output.
    pub stdout: bool,
    /// Whether the client wants standard error.
    pub stderr: bool,
    /// Whether a terminal is allocated (an interactive session).
    pub tty: bool,
}

/// Subresources that open a stream into a pod rather than read or write an
/// object; policy treats them as the riskiest kind of request.
const CONNECT_SUBRESOURCES: [&str; 3] = ["exec", "attach", "portforward"];

impl RequestInfo {
    /// Derives the request attributes from the method, the path (without the
    /// connection prefix) and the raw query string (without `?`).
    pub fn parse(method: &str, path: &str, query: &str) -> Result<Self, RequestInfoError> {
        let decoded = percent_decode(path, false);
        let params = parse_query(query);
        let mut info = RequestInfo {
            path: decoded.clone(),
            verb: method.to_ascii_lowercase(),
            ..RequestInfo::default()
        };
        let mut parts: Vec<&str> = split_path(&decoded);
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(RequestInfoError::AmbiguousPath(decoded));
        }
        // Shortest resource paths: /api/v1/pods and /apis/g/v1/deployments.
        if parts.len() < 3 || (parts[0] != "api" && parts[0] != "apis") {
            return Ok(info);
        }
        let prefix = parts.remove(0);
        if prefix == "apis" {
            if parts.len() < 3 {
                return Ok(info);
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.api_prefix = prefix.to_string();
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();

        if parts[0] == "watch" || parts[0] == "proxy" {
            if parts.len() < 2 {
                return Err(RequestInfoError::MissingResource(decoded));
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match method.to_ascii_uppercase().as_str() {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }

        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            // /namespaces/NAME/status and /finalize are subresources of the
            // namespace; anything else is a namespaced resource.
            if parts.len() > 2 && parts[2] != "status" && parts[2] != "finalize" {
                parts.drain(..2);
            }
        }
        info.parts = parts.iter().map(|p| p.to_string()).collect();
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_string();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_string();
        }
        info.resource = parts[0].to_string();

        if info.name.is_empty() && info.verb == "get" {
            info.verb = if query_bool(&params, "watch") {
                "watch"
            } else {
                "list"
            }
            .to_string();
            if let Some(name) = field_selector_name(&params) {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }

        if info.resource == "pods" && (info.subresource == "exec" || info.subresource == "attach") {
            info.exec = Some(ExecRequest::from_params(&params));
        }
        if info.resource == "pods" && info.subresource == "portforward" {
            info.ports = ports_from_params(&params)?;
        }
        Ok(info)
    }

    /// Whether this request opens a stream into a pod (exec, attach,
    /// port-forward), which the proxy must upgrade and record.
    pub fn is_connect(&self) -> bool {
        self.is_resource_request
            && self.resource == "pods"
            && CONNECT_SUBRESOURCES.contains(&self.subresource.as_str())
    }

    /// The verb policy should judge. Over WebSockets kubectl opens exec,
    /// attach and port-forward with a GET, which the API server's request
    /// info calls `get`; the request still runs something in a pod, so it
    /// is judged as `create`, the verb RBAC grants for these subresources
    /// (and what the API server itself checks for WebSocket upgrades since
    /// Kubernetes 1.35).
    pub fn effective_verb(&self) -> &str {
        if self.is_connect() && self.verb == "get" {
            "create"
        } else {
            &self.verb
        }
    }

    /// A one-line summary for the audit trail and for approvers, in
    /// kubectl's words: `delete namespaces/prod`,
    /// `create pods/exec web-1 -n prod: sh -c ls`, `list pods -n prod`,
    /// `get /version`.
    pub fn describe(&self) -> String {
        if !self.is_resource_request {
            return format!("{} {}", self.verb, self.path);
        }
        let mut out = String::new();
        out.push_str(self.effective_verb());
        out.push(' ');
        out.push_str(&self.resource);
        if !self.api_group.is_empty() {
            out.push('.');
            out.push_str(&self.api_group);
        }
        if !self.subresource.is_empty() {
            let _ = write!(out, "/{}", self.subresource);
            if !self.name.is_empty() {
                let _ = write!(out, " {}", self.name);
            }
        } else if !self.name.is_empty() {
            let _ = write!(out, "/{}", self.name);
        }
        let names_itself = self.resource == "namespaces" && self.name == self.namespace;
        if !self.namespace.is_empty() && !names_itself {
            let _ = write!(out, " -n {}", self.namespace);
        }
        if let Some(exec) = &self.exec {
            if let Some(container) = &exec.container {
                let _ = write!(out, " -c {container}");
            }
            if exec.tty && exec.stdin {
                out.push_str(" -it");
            } else if exec.stdin {
                out.push_str(" -i");
            }
            if !exec.command.is_empty() {
                let _ = write!(out, ": {}", exec.command_line());
            }
        }
        if !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            let _ = write!(out, ": ports {}", ports.join(","));
        }
        if self.verb == "proxy" && self.parts.len() > 2 {
            let _ = write!(out, " /{}", self.parts[2..].join("/"));
        }
        out
    }
}

impl ExecRequest {
    /// Reads the exec/attach options from a raw query string (without `?`).
    pub fn from_query(query: &str) -> Self {
        Self::from_params(&parse_query(query))
    }

    fn from_params(params: &[(String, String)]) -> Self {
        ExecRequest {
            command: params
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            container: params
                .iter()
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty()),
            stdin: query_bool(params, "stdin"),
            stdout: query_bool(params, "stdout"),
            stderr: query_bool(params, "stderr"),
            tty: query_bool(params, "tty"),
        }
    }

    /// The command as one shell-quoted line, so `sh -c 'rm -rf /'` reads
    /// unambiguously in an approval request.
    pub fn command_line(&self) -> String {
        self.command
            .iter()
            .map(|arg| shell_quote(arg))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Reads the `ports=` parameters of a port-forward request from a raw query
/// string, so policy can allow some ports of a pod and not others.
pub fn portforward_ports(query: &str) -> Result<Vec<u16>, RequestInfoError> {
    ports_from_params(&parse_query(query))
}

fn ports_from_params(params: &[(String, String)]) -> Result<Vec<u16>, RequestInfoError> {
    let mut ports = Vec::new();
    for (_, value) in params.iter().filter(|(k, _)| k == "ports") {
        // The API server accepts a comma-separated list in one parameter too.
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(RequestInfoError::InvalidPort(item.to_string())),
            }
        }
    }
    Ok(ports)
}

fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// Go's query bool: present and not `0`/`false` (any case) means true.
fn query_bool(params: &[(String, String)], key: &str) -> bool {
    match params.iter().find(|(k, _)| k == key) {
        None => false,
        Some((_, v)) => !(v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

/// The name a field selector pins with `metadata.name=` or `==`, as the API
/// server reads it for list and watch requests.
fn field_selector_name(params: &[(String, String)]) -> Option<String> {
    let (_, selector) = params.iter().find(|(k, _)| k == "fieldSelector")?;
    for term in selector.split(',') {
        let term = term.trim();
        let Some(rest) = term.strip_prefix("metadata.name") else {
            continue;
        };
        let value = rest
            .strip_prefix("==")
            .or_else(|| rest.strip_prefix('='))
            .map(str::trim);
        if let Some(name) = value {
            let valid = !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains('/')
                && !name.contains('%');
            return valid.then(|| name.to_string());
        }
    }
    None
}

/// Splits `a=1&b=x+y` into decoded pairs, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// `%XX` escapes decoded, and `+` as a space in queries and forms; an
/// invalid escape is kept as written. Shared with the classify stage.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, path, query, resource?, verb, group, version, ns, resource,
    /// subresource, name)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        bool,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    #[rustfmt::skip]
    const TABLE: &[Row] = &[
        // Non-resource requests: the verb is the lower-case method.
        ("GET", "/version", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/healthz", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/api", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/apis", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/api/v1", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/apis/apps", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/apis/apps/v1", "", false, "get", "", "", "", "", "", ""),
        ("POST", "/version", "", false, "post", "", "", "", "", "", ""),
        ("HEAD", "/openapi/v2", "", false, "head", "", "", "", "", "", ""),
        ("GET", "/", "", false, "get", "", "", "", "", "", ""),
        ("GET", "/other/x/y/z", "", false, "get", "", "", "", "", "", ""),
        // Core group.
        ("GET", "/api/v1/namespaces", "", true, "list", "", "v1", "", "namespaces", "", ""),
        ("GET", "/api/v1/namespaces/prod", "", true, "get", "", "v1", "prod", "namespaces", "", "prod"),
        ("DELETE", "/api/v1/namespaces/prod", "", true, "delete", "", "v1", "prod", "namespaces", "", "prod"),
        ("PUT", "/api/v1/namespaces/prod/finalize", "", true, "update", "", "v1", "prod", "namespaces", "finalize", "prod"),
        ("GET", "/api/v1/namespaces/prod/status", "", true, "get", "", "v1", "prod", "namespaces", "status", "prod"),
        ("GET", "/api/v1/pods", "", true, "list", "", "v1", "", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "limit=500", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "watch=true", true, "watch", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "watch=1", true, "watch", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "watch=false", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "watch=0", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods", "fieldSelector=metadata.name%3Dweb-1&watch=true", true, "watch", "", "v1", "prod", "pods", "", "web-1"),
        ("GET", "/api/v1/namespaces/prod/pods", "fieldSelector=status.phase%3DRunning%2Cmetadata.name%3D%3Dweb-1", true, "list", "", "v1", "prod", "pods", "", "web-1"),
        ("GET", "/api/v1/namespaces/prod/pods", "fieldSelector=metadata.name%3D..", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods/web-1", "", true, "get", "", "v1", "prod", "pods", "", "web-1"),
        // A watch on a named object is still a get in the API server's eyes.
        ("GET", "/api/v1/namespaces/prod/pods/web-1", "watch=true", true, "get", "", "v1", "prod", "pods", "", "web-1"),
        ("HEAD", "/api/v1/namespaces/prod/pods/web-1", "", true, "get", "", "v1", "prod", "pods", "", "web-1"),
        ("POST", "/api/v1/namespaces/prod/pods", "", true, "create", "", "v1", "prod", "pods", "", ""),
        ("PUT", "/api/v1/namespaces/prod/pods/web-1", "", true, "update", "", "v1", "prod", "pods", "", "web-1"),
        ("PATCH", "/api/v1/namespaces/prod/pods/web-1", "", true, "patch", "", "v1", "prod", "pods", "", "web-1"),
        ("DELETE", "/api/v1/namespaces/prod/pods/web-1", "", true, "delete", "", "v1", "prod", "pods", "", "web-1"),
        ("DELETE", "/api/v1/namespaces/prod/pods", "", true, "deletecollection", "", "v1", "prod", "pods", "", ""),
        ("OPTIONS", "/api/v1/namespaces/prod/pods", "", true, "", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/log", "follow=true", true, "get", "", "v1", "prod", "pods", "log", "web-1"),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/exec", "command=ls", true, "get", "", "v1", "prod", "pods", "exec", "web-1"),
        ("POST", "/api/v1/namespaces/prod/pods/web-1/exec", "command=ls", true, "create", "", "v1", "prod", "pods", "exec", "web-1"),
        ("POST", "/api/v1/namespaces/prod/pods/web-1/attach", "", true, "create", "", "v1", "prod", "pods", "attach", "web-1"),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/portforward", "ports=8080", true, "get", "", "v1", "prod", "pods", "portforward", "web-1"),
        ("PUT", "/api/v1/namespaces/prod/pods/web-1/status", "", true, "update", "", "v1", "prod", "pods", "status", "web-1"),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/proxy/metrics", "", true, "get", "", "v1", "prod", "pods", "proxy", "web-1"),
        ("GET", "/api/v1/namespaces/prod/configmaps/app", "", true, "get", "", "v1", "prod", "configmaps", "", "app"),
        ("GET", "/api/v1/nodes/n1", "", true, "get", "", "v1", "", "nodes", "", "n1"),
        // Legacy watch and proxy verbs in the path.
        ("GET", "/api/v1/watch/pods", "", true, "watch", "", "v1", "", "pods", "", ""),
        ("GET", "/api/v1/watch/namespaces/prod/pods", "", true, "watch", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/watch/namespaces/prod/pods/web-1", "", true, "watch", "", "v1", "prod", "pods", "", "web-1"),
        ("GET", "/api/v1/proxy/namespaces/prod/pods/web-1/healthz", "", true, "proxy", "", "v1", "prod", "pods", "", "web-1"),
        ("GET", "/api/v1/proxy/nodes/n1/stats", "", true, "proxy", "", "v1", "", "nodes", "", "n1"),
        // Named groups.
        ("GET", "/apis/apps/v1/deployments", "", true, "list", "apps", "v1", "", "deployments", "", ""),
        ("GET", "/apis/apps/v1/namespaces/prod/deployments/web", "", true, "get", "apps", "v1", "prod", "deployments", "", "web"),
        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale", "", true, "patch", "apps", "v1", "prod", "deployments", "scale", "web"),
        ("GET", "/apis/apps/v1/watch/namespaces/prod/deployments", "", true, "watch", "apps", "v1", "prod", "deployments", "", ""),
        ("DELETE", "/apis/batch/v1/namespaces/prod/jobs", "", true, "deletecollection", "batch", "v1", "prod", "jobs", "", ""),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "", true, "create", "authorization.k8s.io", "v1", "", "selfsubjectaccessreviews", "", ""),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "", true, "get", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "admin"),
        // Slashes and encoded names.
        ("GET", "/api/v1/namespaces/prod/pods/", "", true, "list", "", "v1", "prod", "pods", "", ""),
        ("GET", "/api/v1/namespaces/prod/configmaps/a%20b", "", true, "get", "", "v1", "prod", "configmaps", "", "a b"),
    ];

    #[test]
    fn table_of_paths() {
        for row in TABLE {
            let (method, path, query, resource_request, verb, group, version, ns, res, sub, name) =
                *row;
            let info = RequestInfo::parse(method, path, query).unwrap();
            let got = (
                info.is_resource_request,
                info.verb.as_str(),
                info.api_group.as_str(),
                info.api_version.as_str(),
                info.namespace.as_str(),
                info.resource.as_str(),
                info.subresource.as_str(),
                info.name.as_str(),
            );
            assert_eq!(
                got,
                (resource_request, verb, group, version, ns, res, sub, name),
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn special_verb_without_resource_is_an_error() {
        assert!(matches!(
            RequestInfo::parse("GET", "/api/v1/watch", ""),
            Err(RequestInfoError::MissingResource(_))
        ));
        assert!(RequestInfo::parse("GET", "/apis/apps/v1/proxy", "").is_err());
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "//api//v1/namespaces/prod/pods",
            "/api/v1/namespaces/prod/../kube-system/secrets",
            "/api/v1/namespaces/prod/%2E%2E/kube-system/secrets",
            "/api/v1/namespaces/prod/pods/./web-1",
        ] {
            assert!(
                matches!(
                    RequestInfo::parse("GET", path, ""),
                    Err(RequestInfoError::AmbiguousPath(_))
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn proxy_keeps_the_remaining_path() {
        let info =
            RequestInfo::parse("GET", "/api/v1/proxy/namespaces/prod/pods/web-1/a/b", "").unwrap();
        assert_eq!(info.parts, ["pods", "web-1", "a", "b"]);
        assert_eq!(info.describe(), "proxy pods/web-1 -n prod /a/b");
    }

    #[test]
    fn exec_options_from_query() {
        let q = "command=sh&command=-c&command=echo+hi%3B+id&container=app&stdin=true&stdout=true&stderr=true&tty=true";
        let exec = ExecRequest::from_query(q);
        assert_eq!(exec.command, ["sh", "-c", "echo hi; id"]);
        assert_eq!(exec.container.as_deref(), Some("app"));
        assert!(exec.stdin && exec.stdout && exec.stderr && exec.tty);
        assert_eq!(exec.command_line(), "sh -c 'echo hi; id'");

        let exec = ExecRequest::from_query("command=ls&stdout=true&stderr=1&stdin=false&tty=0");
        assert_eq!(exec.command, ["ls"]);
        assert_eq!(exec.container, None);
        assert!(exec.stdout && exec.stderr && !exec.stdin && !exec.tty);

        let exec = ExecRequest::from_query("command=echo&command=it%27s");
        assert_eq!(exec.command_line(), r"echo 'it'\''s'");
        assert_eq!(ExecRequest::from_query(""), ExecRequest::default());
    }

    #[test]
    fn exec_request_is_attached_to_exec_and_attach_only() {
        let path = "/api/v1/namespaces/prod/pods/web-1/exec";
        let info = RequestInfo::parse("GET", path, "command=ls&stdout=true").unwrap();
        assert_eq!(info.exec.unwrap().command, ["ls"]);
        let info = RequestInfo::parse(
            "POST",
            "/api/v1/namespaces/prod/pods/web-1/attach",
            "stdin=1",
        )
        .unwrap();
        assert!(info.exec.unwrap().stdin);
        let info = RequestInfo::parse(
            "GET",
            "/api/v1/namespaces/prod/pods/web-1/log",
            "command=ls",
        )
        .unwrap();
        assert_eq!(info.exec, None);
    }

    #[test]
    fn portforward_ports() {
        let path = "/api/v1/namespaces/prod/pods/web-1/portforward";
        let info = RequestInfo::parse("GET", path, "ports=8080&ports=9090").unwrap();
        assert_eq!(info.ports, [8080, 9090]);
        assert!(info.is_connect());
        assert_eq!(
            info.describe(),
            "create pods/portforward web-1 -n prod: ports 8080,9090"
        );
        assert_eq!(super::portforward_ports("ports=80,443").unwrap(), [80, 443]);
        assert_eq!(
            RequestInfo::parse("GET", path, "ports=http"),
            Err(RequestInfoError::InvalidPort("http".into()))
        );
        assert!(RequestInfo::parse("GET", path, "ports=0").is_err());
        assert!(RequestInfo::parse("GET", path, "ports=70000").is_err());
    }

    #[test]
    fn effective_verb_of_websocket_connects_is_create() {
        let info =
            RequestInfo::parse("GET", "/api/v1/namespaces/prod/pods/web-1/exec", "").unwrap();
        assert_eq!(info.verb, "get");
        assert_eq!(info.effective_verb(), "create");
        let info = RequestInfo::parse("GET", "/api/v1/namespaces/prod/pods/web-1/log", "").unwrap();
        assert!(!info.is_connect());
        assert_eq!(info.effective_verb(), "get");
        let info =
            RequestInfo::parse("GET", "/api/v1/namespaces/prod/services/web-1/exec", "").unwrap();
        assert!(!info.is_connect());
    }

    #[test]
    fn describe_reads_like_kubectl() {
        let cases = [
            (
                "DELETE",
                "/api/v1/namespaces/prod",
                "",
                "delete namespaces/prod",
            ),
            (
                "GET",
                "/api/v1/namespaces/prod/pods/web-1/exec",
                "command=sh&command=-c&command=ls&stdout=true&stderr=true",
                "create pods/exec web-1 -n prod: sh -c ls",
            ),
            (
                "GET",
                "/api/v1/namespaces/prod/pods/web-1/exec",
                "command=bash&container=app&stdin=true&stdout=true&tty=true",
                "create pods/exec web-1 -n prod -c app -it: bash",
            ),
            (
                "GET",
                "/api/v1/namespaces/prod/pods",
                "",
                "list pods -n prod",
            ),
            (
                "GET",
                "/api/v1/namespaces/prod/pods",
                "watch=1",
                "watch pods -n prod",
            ),
            ("GET", "/api/v1/namespaces", "", "list namespaces"),
            (
                "GET",
                "/api/v1/namespaces/prod/pods/web-1/log",
                "follow=true",
                "get pods/log web-1 -n prod",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/prod/pods/web-1",
                "",
                "delete pods/web-1 -n prod",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/prod/pods",
                "",
                "deletecollection pods -n prod",
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/prod/deployments/web/scale",
                "",
                "patch deployments.apps/scale web -n prod",
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/prod/deployments",
                "",
                "create deployments.apps -n prod",
            ),
            ("GET", "/version", "", "get /version"),
            ("GET", "/apis", "", "get /apis"),
        ];
        for (method, path, query, want) in cases {
            let info = RequestInfo::parse(method, path, query).unwrap();
            assert_eq!(info.describe(), want, "{method} {path}?{query}");
        }
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%2Fb", false), "a/b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b", true), "a b");
    }
}
