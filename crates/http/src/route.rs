//! Which connection a request is for: by host name, else by path prefix.

use gatehouse_core::policy::ConnectionConfig;

/// The HTTP connections of a policy, indexed for lookup.
pub struct Routes {
    by_host: Vec<(String, usize)>,
    by_prefix: Vec<(String, usize)>,
    connections: Vec<ConnectionConfig>,
}

/// A request matched to its connection.
pub struct Route<'a> {
    /// The connection.
    pub connection: &'a ConnectionConfig,
    /// The path below the connection's prefix (always starts with `/`).
    pub path: String,
}

impl Routes {
    /// Index `connections` (only HTTP kinds are kept). Longer prefixes are
    /// tried first so `/llm-eu` is not taken by `/llm`.
    pub fn new(connections: &[ConnectionConfig]) -> Routes {
        let connections: Vec<ConnectionConfig> = connections
            .iter()
            .filter(|c| c.kind.is_http())
            .cloned()
            .collect();
        let mut by_host = Vec::new();
        let mut by_prefix = Vec::new();
        for (i, c) in connections.iter().enumerate() {
            for h in &c.hostnames {
                by_host.push((h.to_ascii_lowercase(), i));
            }
            let prefix = c
                .path_prefix
                .clone()
                .unwrap_or_else(|| format!("/{}", c.name));
            by_prefix.push((prefix, i));
        }
        by_prefix.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Routes {
            by_host,
            by_prefix,
            connections,
        }
    }

    /// Whether any HTTP connection is configured.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The HTTP connections.
    pub fn connections(&self) -> &[ConnectionConfig] {
        &self.connections
    }

    /// Find the connection for a request's `Host` (port ignored) and path.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<Route<'_>> {
        if let Some(host) = host {
            let bare = strip_port(host).to_ascii_lowercase();
            if let Some((_, i)) = self.by_host.iter().find(|(h, _)| *h == bare) {
                return Some(Route {
                    connection: &self.connections[*i],
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.into()
                    },
                });
            }
        }
        self.by_prefix.iter().find_map(|(prefix, i)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            Some(Route {
                connection: &self.connections[*i],
                path: if rest.is_empty() {
                    "/".into()
                } else {
                    rest.into()
                },
            })
        })
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map(|(h, _)| &h[1..]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(toml_text: &str) -> ConnectionConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn host_then_longest_prefix() {
        let routes = Routes::new(&[
            conn("name='llm'\ntype='openai'\nhost='a'\nport=1\nallow_groups=['x']"),
            conn("name='llm-eu'\ntype='openai'\nhost='b'\nport=1\nallow_groups=['x']"),
            conn("name='k8s'\ntype='kubernetes'\nhost='c'\nport=1\nallow_groups=['x']\nhostnames=['k8s.gatehouse.test']"),
            conn("name='db'\ntype='postgres'\nhost='d'\nport=1\nuser='u'\nallow_groups=['x']"),
        ]);
        let r = routes
            .find(Some("localhost:8443"), "/llm-eu/v1/models")
            .unwrap();
        assert_eq!(
            (r.connection.name.as_str(), r.path.as_str()),
            ("llm-eu", "/v1/models")
        );
        let r = routes.find(None, "/llm").unwrap();
        assert_eq!((r.connection.name.as_str(), r.path.as_str()), ("llm", "/"));
        assert!(routes.find(None, "/llmx/v1").is_none());
        let r = routes
            .find(Some("K8S.gatehouse.test:443"), "/api/v1/pods")
            .unwrap();
        assert_eq!(
            (r.connection.name.as_str(), r.path.as_str()),
            ("k8s", "/api/v1/pods")
        );
        assert!(
            routes.find(None, "/db/x").is_none(),
            "SQL connections are not HTTP routes"
        );
    }
}
