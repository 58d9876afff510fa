//! Scrambles for the gateway's own login to a target: pure functions.
//!
//! - `mysql_native_password`: SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw))).
//! - `caching_sha2_password` (MySQL 8): SHA256(pw) XOR
//!   SHA256(SHA256(SHA256(pw)) ‖ scramble) for the fast path; the full path
//!   needs the cleartext password over TLS or RSA, which the gateway does
//!   not do yet (it says so and stops).
//! - MariaDB `client_ed25519`: an Ed25519 signature of the scramble with the
//!   key expanded from SHA512(pw), as MariaDB's `crypto_sign` does.

use sha1::{Digest as _, Sha1};
use sha2::{Sha256, Sha512};

/// `mysql_native_password` response; empty for an empty password.
pub fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let scramble = &scramble[..scramble.len().min(20)];
    let h1 = Sha1::digest(password);
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password` fast-path response; empty for an empty password.
pub fn caching_sha2(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let scramble = &scramble[..scramble.len().min(20)];
    let h1 = Sha256::digest(password);
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(scramble);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// MariaDB `client_ed25519` response: a 64-byte signature of the scramble.
pub fn ed25519(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
    let digest = Sha512::digest(password);
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&digest);
    let esk = ExpandedSecretKey::from_bytes(&bytes);
    let public = ed25519_dalek::VerifyingKey::from(&esk);
    raw_sign::<Sha512>(&esk, scramble, &public)
        .to_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_matches_a_known_vector() {
        // The server stores SHA1(SHA1(pw)); check the response against it
        // the way the server does: SHA1(response XOR SHA1(scramble ‖ stored)) = stored.
        let scramble: Vec<u8> = (1..=20).collect();
        let resp = native_password(b"secret", &scramble);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut h = Sha1::new();
        h.update(&scramble);
        h.update(stored);
        let mix = h.finalize();
        let h1: Vec<u8> = resp.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha1::digest(&h1).to_vec(), stored.to_vec());
        assert!(native_password(b"", &scramble).is_empty());
    }

    #[test]
    fn caching_sha2_is_checked_like_the_server_does() {
        let scramble: Vec<u8> = (1..=20).collect();
        let resp = caching_sha2(b"secret", &scramble);
        let stored = Sha256::digest(Sha256::digest(b"secret"));
        let mut h = Sha256::new();
        h.update(stored);
        h.update(&scramble);
        let mix = h.finalize();
        let h1: Vec<u8> = resp.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha256::digest(&h1).to_vec(), stored.to_vec());
    }

    #[test]
    fn ed25519_signature_verifies_with_the_password_key() {
        use ed25519_dalek::hazmat::ExpandedSecretKey;
        use ed25519_dalek::Verifier;
        let scramble = [9u8; 32];
        let sig = ed25519(b"secret", &scramble);
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(&Sha512::digest(b"secret"));
        let public = ed25519_dalek::VerifyingKey::from(&ExpandedSecretKey::from_bytes(&bytes));
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        assert!(public.verify(&scramble, &sig).is_ok());
    }
}
