//! Access tokens as a client presents them (PostgreSQL password, MySQL
//! clear-text password, HTTP bearer).
//!
//! The token parser (`token::UnverifiedToken`, reading `alg`, `kid`, `iss`
//! before any key lookup) and the claims reader (`claims::verify`) are
//! private; the public entry that reaches both is
//! `TokenValidator::validate`. The validator trusts only the in-process dev
//! issuer (`DevIssuer`, key in a temporary folder), so nothing is fetched
//! over the network whatever `iss` says.
//!
//! Input: byte 0 picks the mode, the rest is
//! - mode 0: the token text itself (lossy UTF-8);
//! - mode 1: header JSON and payload JSON separated by the first `\n`,
//!   each base64url-encoded and joined with a dummy signature, so the
//!   header and payload checks before the signature are reached;
//! - mode 2: claims JSON signed with the dev issuer's real key (alg EdDSA),
//!   so the claim checks after the signature are reached.
#![no_main]

use gatehouse_identity::{check_subject, DevIssuer, TokenValidator, DEFAULT_LEEWAY};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

const ISSUER: &str = "http://127.0.0.1:9/dev";

struct Setup {
    runtime: tokio::runtime::Runtime,
    validator: TokenValidator,
    dev: DevIssuer,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join("gatehouse-fuzz-jwt");
        let dev = DevIssuer::load_or_create(&dir, ISSUER).expect("dev issuer");
        let validator_dev = DevIssuer::load_or_create(&dir, ISSUER).expect("dev issuer");
        let validator = TokenValidator::new(Vec::new(), Some(validator_dev), DEFAULT_LEEWAY)
            .expect("validator");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Setup {
            runtime,
            validator,
            dev,
        }
    })
}

fn b64url(bytes: &[u8]) -> String {
    // Plain base64url without padding, written out to keep the fuzz crate's
    // dependencies to the workspace's own.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = setup();
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let (header, payload) = (&rest[..cut], rest.get(cut + 1..).unwrap_or(&[]));
            format!("{}.{}.c2ln", b64url(header), b64url(payload))
        }
        _ => {
            let Ok(claims) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            match s.dev.sign_claims(&claims) {
                Ok(t) => t,
                Err(_) => return,
            }
        }
    };
    let result = s.runtime.block_on(s.validator.validate(&token));
    match result {
        Ok(identity) => {
            assert!(
                !identity.subject.trim().is_empty(),
                "accepted an empty subject"
            );
            assert_eq!(identity.issuer, ISSUER);
            assert!(mode % 3 == 2, "accepted a token not signed by the dev key");
            let _ = check_subject(&identity, "alice");
        }
        Err(e) => {
            let _ = e.is_server_side();
            let _ = e.to_string();
        }
    }
});
