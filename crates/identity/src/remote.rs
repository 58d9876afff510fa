//! Signing keys of one remote issuer: discovery, JWKS fetch and cache.
//!
//! Keys are fetched lazily on first use and cached. A token naming a key
//! the cache does not hold triggers a refetch (the issuer may have rotated
//! its keys), but at most once per refetch interval, so a flood of tokens
//! with invented key ids cannot turn the gateway into a load generator
//! against the identity provider. Concurrent refreshes are coalesced: one
//! task fetches while the others wait for its result.
//!
//! If a refresh fails, keys already cached keep being used (an IdP outage
//! should not log everyone out); if there are none, validation fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use parking_lot::RwLock;
use serde_json::Value;

use crate::config::{check_url, IssuerConfig, UrlProblem};
use crate::error::{untrusted, AuthError, IdentityError};
use crate::fetch::Fetcher;
use crate::jwks::{KeySet, TrustedKey};

/// Cached keys older than this are refreshed on next use, so removed keys
/// eventually stop being accepted even when no unknown `kid` shows up.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);

/// Discovery, JWKS and their cache for one configured issuer.
pub(crate) struct RemoteIssuer {
    config: IssuerConfig,
    fetcher: Fetcher,
    refetch_interval: Duration,
    cache: RwLock<Cache>,
    /// Held while fetching, so concurrent refreshes coalesce.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// From config, or from discovery once it succeeded.
    jwks_uri: Option<String>,
    keys: Option<Arc<KeySet>>,
    /// When the last fetch attempt finished, successful or not.
    attempted_at: Option<Instant>,
    /// When `keys` were fetched.
    fetched_at: Option<Instant>,
    /// Why the last attempt failed, if it did.
    last_error: Option<AuthError>,
    /// Bumped on every attempt; lets waiters see that someone else fetched.
    generation: u64,
}

impl RemoteIssuer {
    /// Prepares the issuer; nothing is fetched until the first token.
    pub(crate) fn new(
        config: IssuerConfig,
        refetch_interval: Duration,
    ) -> Result<Self, IdentityError> {
        let fetcher = Fetcher::new(!config.http_permitted())?;
        let cache = Cache {
            jwks_uri: config.jwks_uri.clone(),
            ..Cache::default()
        };
        Ok(RemoteIssuer {
            config,
            fetcher,
            refetch_interval,
            cache: RwLock::new(cache),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// Changes how often an unknown `kid` may trigger a refetch.
    pub(crate) fn set_refetch_interval(&mut self, interval: Duration) {
        self.refetch_interval = interval;
    }

    /// The key that should have signed a token with this `kid` and `alg`.
    pub(crate) async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<TrustedKey>, AuthError> {
        let seen_generation = {
            let cache = self.cache.read();
            if let Some(keys) = cache.fresh_keys() {
                if let Some(key) = keys.select(kid, alg)? {
                    return Ok(key);
                }
            }
            cache.generation
        };

        let _single_flight = self.refresh.lock().await;
        {
            let cache = self.cache.read();
            let someone_else_fetched = cache.generation != seen_generation;
            if someone_else_fetched || !cache.may_fetch(self.refetch_interval) {
                return cache.answer(kid, alg);
            }
        }
        let outcome = self.fetch_keys().await;
        let mut cache = self.cache.write();
        cache.record(outcome, self.config.jwks_uri.is_none());
        cache.answer(kid, alg)
    }

    /// Discovery (if needed) then JWKS.
    async fn fetch_keys(&self) -> Result<(String, KeySet), AuthError> {
        let known_uri = self.cache.read().jwks_uri.clone();
        let jwks_uri = match known_uri {
            Some(uri) => uri,
            None => self.discover().await?,
        };
        tracing::debug!(issuer = %self.config.issuer, %jwks_uri, "fetching JWKS");
        let doc = self.fetcher.json(&jwks_uri).await?;
        let keys = KeySet::from_jwks(&doc)
            .map_err(|e| AuthError::ProviderMisconfigured(format!("{jwks_uri}: {e}")))?;
        if keys.is_empty() {
            return Err(AuthError::ProviderMisconfigured(format!(
                "{jwks_uri} publishes no usable signing keys"
            )));
        }
        Ok((jwks_uri, keys))
    }

    /// Reads the discovery document and returns its `jwks_uri`, after
    /// checking it speaks for exactly the configured issuer.
    async fn discover(&self) -> Result<String, AuthError> {
        let url = self.config.discovery_url();
        tracing::debug!(issuer = %self.config.issuer, %url, "OIDC discovery");
        let doc = self.fetcher.json(&url).await?;
        let announced = doc.get("issuer").and_then(Value::as_str);
        if announced != Some(self.config.issuer.as_str()) {
            return Err(AuthError::ProviderMisconfigured(format!(
                "the discovery document at {url} names issuer {} but the gateway is configured \
                 for `{}`; the two must match exactly",
                announced.map_or_else(|| "(none)".to_owned(), untrusted),
                self.config.issuer
            )));
        }
        let jwks_uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
            AuthError::ProviderMisconfigured(format!(
                "the discovery document at {url} has no jwks_uri"
            ))
        })?;
        check_url("jwks_uri", jwks_uri, self.config.http_permitted()).map_err(|problem| {
            let why = match problem {
                UrlProblem::Insecure => "uses plain http".to_owned(),
                UrlProblem::Invalid(reason) => reason,
            };
            AuthError::ProviderMisconfigured(format!(
                "the jwks_uri {} announced at {url} {why}",
                untrusted(jwks_uri)
            ))
        })?;
        Ok(jwks_uri.to_owned())
    }
}

impl Cache {
    /// Keys young enough to use without considering a refresh.
    fn fresh_keys(&self) -> Option<&KeySet> {
        let fresh = self.fetched_at.is_some_and(|at| at.elapsed() < MAX_KEY_AGE);
        self.keys.as_deref().filter(|_| fresh)
    }

    /// The rate limit: one attempt per interval.
    fn may_fetch(&self, interval: Duration) -> bool {
        self.attempted_at.is_none_or(|at| at.elapsed() >= interval)
    }

    fn record(&mut self, outcome: Result<(String, KeySet), AuthError>, discovered: bool) {
        let now = Instant::now();
        self.generation += 1;
        self.attempted_at = Some(now);
        match outcome {
            Ok((jwks_uri, keys)) => {
                self.jwks_uri = Some(jwks_uri);
                self.keys = Some(Arc::new(keys));
                self.fetched_at = Some(now);
                self.last_error = None;
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing identity provider keys failed");
                if discovered {
                    // The discovered jwks_uri may be what broke; rediscover next time.
                    self.jwks_uri = None;
                }
                self.last_error = Some(error);
            }
        }
    }

    /// The best answer from what is cached now, fetching nothing.
    fn answer(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<TrustedKey>, AuthError> {
        let found = match &self.keys {
            Some(keys) => keys.select(kid, alg)?,
            None => None,
        };
        match (found, &self.last_error) {
            (Some(key), _) => Ok(key),
            // We could not check: say so rather than blame the token.
            (None, Some(error)) => Err(error.clone()),
            (None, None) if self.keys.is_none() => Err(AuthError::ProviderUnreachable(
                "signing keys have not been fetched yet".to_owned(),
            )),
            (None, None) => Err(AuthError::UnknownKey(match kid {
                Some(kid) => format!("key id {}", untrusted(kid)),
                None => "the token names no key id".to_owned(),
            })),
        }
    }
}
