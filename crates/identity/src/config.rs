//! Which identity providers the gateway trusts.
//!
//! Parsed straight from the gateway's TOML (`[[identity.issuers]]`) and
//! checked once at startup, so a typo or an insecure URL stops the gateway
//! instead of silently weakening authentication.

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::error::IdentityError;

/// One trusted OIDC issuer, as written in the gateway's config file.
///
/// ```toml
/// [[identity.issuers]]
/// issuer = "https://login.example.com/realms/bank"
/// audiences = ["gatehouse"]
/// groups_claim = "realm_access.roles"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier; a token's `iss` must equal it byte for byte.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one of them so
    /// tokens minted for other services are refused.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Claim holding the caller's groups. A dotted path such as
    /// `realm_access.roles` walks nested objects; a claim whose name itself
    /// contains dots (`https://example.com/groups`) is matched first.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Where the signing keys live; when absent it comes from the issuer's
    /// `/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Permits plain http, but only to 127.0.0.1, ::1 or localhost, for a
    /// test identity provider on the same machine. Ignored for other hosts.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

impl IssuerConfig {
    /// A config with the default groups claim and discovery, for code that
    /// builds issuers without a config file (tests, the `login` command).
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            audiences,
            groups_claim: default_groups_claim(),
            jwks_uri: None,
            allow_insecure_http: false,
        }
    }

    /// Rejects configs that would weaken validation; run once at startup.
    pub(crate) fn check(&self) -> Result<(), IdentityError> {
        check_url("issuer", &self.issuer, self.allow_insecure_http).map_err(|e| match e {
            UrlProblem::Insecure => IdentityError::InsecureUrl {
                what: "issuer",
                url: self.issuer.clone(),
            },
            UrlProblem::Invalid(reason) => IdentityError::InvalidIssuerUrl {
                issuer: self.issuer.clone(),
                reason,
            },
        })?;
        if let Some(jwks_uri) = &self.jwks_uri {
            check_url("jwks_uri", jwks_uri, self.allow_insecure_http).map_err(|e| match e {
                UrlProblem::Insecure => IdentityError::InsecureUrl {
                    what: "jwks_uri",
                    url: jwks_uri.clone(),
                },
                UrlProblem::Invalid(reason) => IdentityError::InvalidIssuerUrl {
                    issuer: self.issuer.clone(),
                    reason: format!("jwks_uri: {reason}"),
                },
            })?;
        }
        if self.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err(IdentityError::NoAudiences {
                issuer: self.issuer.clone(),
            });
        }
        if self.groups_claim.is_empty() || self.groups_claim.split('.').any(str::is_empty) {
            return Err(IdentityError::InvalidGroupsClaim {
                issuer: self.issuer.clone(),
                claim: self.groups_claim.clone(),
            });
        }
        Ok(())
    }

    /// Whether plain http may be used for this issuer's URLs at all.
    pub(crate) fn http_permitted(&self) -> bool {
        self.allow_insecure_http && is_loopback_url(&self.issuer)
    }

    /// The discovery document's URL (OIDC Discovery §4: strip a trailing
    /// slash, then append the well-known path).
    pub(crate) fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// Why a URL was refused.
pub(crate) enum UrlProblem {
    /// Not a usable http(s) URL.
    Invalid(String),
    /// Plain http to a host where it is not allowed.
    Insecure,
}

/// Requires https, except http to a loopback host when `allow_insecure_http`.
pub(crate) fn check_url(
    what: &str,
    url: &str,
    allow_insecure_http: bool,
) -> Result<(), UrlProblem> {
    let parsed = Url::parse(url).map_err(|e| UrlProblem::Invalid(format!("{what}: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlProblem::Invalid(format!("{what} has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlProblem::Invalid(format!(
            "{what} must not contain credentials"
        )));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http && is_loopback(&parsed) => Ok(()),
        "http" => Err(UrlProblem::Insecure),
        other => Err(UrlProblem::Invalid(format!(
            "{what} scheme `{other}` is not http(s)"
        ))),
    }
}

/// True for URLs whose host is 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| is_loopback(&u))
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(issuer: &str, insecure: bool) -> IssuerConfig {
        IssuerConfig {
            allow_insecure_http: insecure,
            ..IssuerConfig::new(issuer, vec!["gatehouse".into()])
        }
    }

    #[test]
    fn https_issuer_is_accepted() {
        assert!(cfg("https://idp.example.com/realms/x", false)
            .check()
            .is_ok());
    }

    #[test]
    fn http_to_a_remote_host_is_refused_even_when_insecure_is_allowed() {
        for insecure in [false, true] {
            let err = cfg("http://idp.example.com", insecure).check().unwrap_err();
            assert!(
                matches!(err, IdentityError::InsecureUrl { what: "issuer", .. }),
                "{err}"
            );
        }
        // An IP that merely looks local is not loopback.
        assert!(cfg("http://10.0.0.1", true).check().is_err());
    }

    #[test]
    fn http_to_loopback_needs_the_explicit_opt_in() {
        for host in ["127.0.0.1:8080", "[::1]:9000", "localhost", "LOCALHOST:1"] {
            let url = format!("http://{host}/issuer");
            assert!(cfg(&url, false).check().is_err(), "{url}");
            assert!(cfg(&url, true).check().is_ok(), "{url}");
        }
    }

    #[test]
    fn explicit_jwks_uri_gets_the_same_rule() {
        let mut c = cfg("https://idp.example.com", true);
        c.jwks_uri = Some("http://idp.example.com/keys".into());
        let err = c.check().unwrap_err();
        assert!(matches!(
            err,
            IdentityError::InsecureUrl {
                what: "jwks_uri",
                ..
            }
        ));
    }

    #[test]
    fn missing_audiences_bad_urls_and_groups_paths_are_refused() {
        let mut c = cfg("https://idp.example.com", false);
        c.audiences.clear();
        assert!(matches!(c.check(), Err(IdentityError::NoAudiences { .. })));
        assert!(cfg("not a url", false).check().is_err());
        assert!(cfg("ftp://idp.example.com", false).check().is_err());
        assert!(cfg("https://user:pw@idp.example.com", false)
            .check()
            .is_err());
        let mut c = cfg("https://idp.example.com", false);
        c.groups_claim = "realm_access..roles".into();
        assert!(matches!(
            c.check(),
            Err(IdentityError::InvalidGroupsClaim { .. })
        ));
    }

    #[test]
    fn discovery_url_strips_one_trailing_slash() {
        assert_eq!(
            cfg("https://idp.example.com/realms/x/", false).discovery_url(),
            "https://idp.example.com/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn toml_style_config_fills_defaults() {
        let c: IssuerConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "audiences": ["gatehouse"]
        }))
        .unwrap();
        assert_eq!(c.groups_claim, "groups");
        assert_eq!(c.jwks_uri, None);
        assert!(!c.allow_insecure_http);
        let typo = serde_json::from_value::<IssuerConfig>(serde_json::json!({
            "issuer": "https://idp.example.com",
            "audience": ["gatehouse"]
        }));
        assert!(typo.is_err(), "unknown fields must be rejected");
    }
}
