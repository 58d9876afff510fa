//! Who is calling: OIDC access-token validation for the gateway.
//!
//! The gateway receives a caller's access token where each protocol carries
//! a secret (for PostgreSQL, the password) and turns it into a
//! [`gatehouse_core::Identity`] with [`TokenValidator::validate`]. Issuers
//! are configured with [`IssuerConfig`]; their signing keys come from OIDC
//! discovery and a rate-limited JWKS cache. [`DevIssuer`] is a built-in
//! issuer for demos and first runs whose key the validator trusts
//! in-process.
//!
//! Validation is strict and fails closed: only asymmetric algorithms, the
//! key must fit the algorithm, `iss` and `aud` must match configuration,
//! `exp` and `sub` are required. Errors are written for the person holding
//! the token and never repeat the token itself.

mod algorithm;
mod claims;
mod config;
mod dev;
mod error;
mod fetch;
mod jwks;
mod remote;
mod token;
mod validator;

pub use algorithm::ACCEPTED_ALGORITHMS;
pub use config::IssuerConfig;
pub use dev::{DevIssuer, DEV_AUDIENCE, DEV_KEY_FILE};
pub use error::{AuthError, IdentityError};
pub use token::MAX_TOKEN_BYTES;
pub use validator::{check_subject, TokenValidator, DEFAULT_LEEWAY, DEFAULT_REFETCH_INTERVAL};

/// Pins `jsonwebtoken` to the aws-lc-rs backend once per process, so
/// signing and verification never depend on which backend features other
/// crates in the build happen to enable.
fn ensure_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Fails only if a provider is already installed, which is fine.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}
