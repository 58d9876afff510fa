//! Sealed originals: the unmasked values behind masked ones, encrypted to an
//! investigator's X25519 public key so that the gateway, which holds only
//! that public key, can never read them back.
//!
//! The format is age v1 (<https://age-encryption.org/v1>) with one X25519
//! recipient, ASCII-armored, so the standard `age -d -i KEY` decrypts it
//! too:
//!
//! * a random 16-byte file key is wrapped for the recipient: an ephemeral
//!   X25519 share `e·G`, the shared secret `e·R`, a wrap key
//!   `HKDF-SHA256(shared, salt = share || R, "age-encryption.org/v1/X25519")`
//!   and ChaCha20-Poly1305 over the file key;
//! * the header is authenticated with `HMAC-SHA256(HKDF(file key, "", "header"))`;
//! * the payload is ChaCha20-Poly1305 in 64 KiB chunks under
//!   `HKDF(file key, nonce, "payload")`, chunk nonces = 11-byte counter ||
//!   last-chunk flag.
//!
//! Keys use age's Bech32 encodings: recipients `age1…`, identities
//! `AGE-SECRET-KEY-1…`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const INTRO: &str = "age-encryption.org/v1";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const CHUNK: usize = 64 * 1024;
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";

/// What can go wrong sealing or opening.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// A key is not in age's format.
    #[error("{0}")]
    Key(String),
    /// The sealed text cannot be opened with this identity, or was altered.
    #[error("{0}")]
    Open(String),
}

/// The investigator's public key: where originals are sealed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

/// The investigator's secret key. Never held by the gateway.
pub struct Identity([u8; 32]);

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&bech32::encode("age", &self.0))
    }
}

impl Recipient {
    /// Parse an `age1…` recipient.
    pub fn parse(text: &str) -> Result<Recipient, SealError> {
        let (hrp, data) = bech32::decode(text.trim()).map_err(|e| {
            SealError::Key(format!("\"{}\" is not an age recipient: {e}", text.trim()))
        })?;
        match <[u8; 32]>::try_from(data) {
            Ok(key) if hrp == "age" => Ok(Recipient(key)),
            _ => Err(SealError::Key(format!(
                "\"{}\" is not an X25519 age recipient (age1…)",
                text.trim()
            ))),
        }
    }
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Identity {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Identity(k)
    }

    /// Parse an identity file's text: the first `AGE-SECRET-KEY-1…` line
    /// (comments starting with `#` are skipped, as age writes them).
    pub fn parse(text: &str) -> Result<Identity, SealError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| SealError::Key("the identity file holds no key".into()))?;
        let (hrp, data) = bech32::decode(line)
            .map_err(|e| SealError::Key(format!("the identity is not an age secret key: {e}")))?;
        match <[u8; 32]>::try_from(data) {
            Ok(key) if hrp == "age-secret-key-" => Ok(Identity(key)),
            _ => Err(SealError::Key(
                "the identity is not an X25519 age secret key (AGE-SECRET-KEY-1…)".into(),
            )),
        }
    }

    /// The identity in age's text form (keep it secret).
    pub fn to_secret_string(&self) -> String {
        bech32::encode("age-secret-key-", &self.0).to_uppercase()
    }

    /// Its public half.
    pub fn recipient(&self) -> Recipient {
        Recipient(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }
}

#[allow(
    clippy::expect_used,
    reason = "HKDF-SHA256 expands to up to 255 × 32 bytes; this asks for 32"
)]
fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
fn header_mac(file_key: &[u8; 16], header: &str) -> [u8; 32] {
    let key = hkdf(file_key, b"", b"header");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(header.as_bytes());
    mac.finalize().into_bytes().into()
}

fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypt `plaintext` to `recipient`; the result is ASCII-armored age.
pub fn seal(recipient: &Recipient, plaintext: &[u8]) -> String {
    let mut rng = rand::rngs::OsRng;
    let mut file_key = [0u8; 16];
    rng.fill_bytes(&mut file_key);
    let mut ephemeral = [0u8; 32];
    rng.fill_bytes(&mut ephemeral);
    let share = MontgomeryPoint::mul_base_clamped(ephemeral).to_bytes();
    let shared = MontgomeryPoint(recipient.0)
        .mul_clamped(ephemeral)
        .to_bytes();
    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(&share);
    salt.extend_from_slice(&recipient.0);
    let wrap_key = hkdf(&shared, &salt, X25519_INFO);
    let body = encrypt(
        &ChaCha20Poly1305::new(Key::from_slice(&wrap_key)),
        &[0u8; 12],
        &file_key,
    );
    let mut header = format!(
        "{INTRO}\n-> X25519 {}\n{}\n---",
        STANDARD_NO_PAD.encode(share),
        STANDARD_NO_PAD.encode(&body)
    );
    let mac = header_mac(&file_key, &header);
    header.push(' ');
    header.push_str(&STANDARD_NO_PAD.encode(mac));
    header.push('\n');

    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let payload_key = hkdf(&file_key, &nonce, b"payload");
    let aead = ChaCha20Poly1305::new(Key::from_slice(&payload_key));
    let mut out = header.into_bytes();
    out.extend_from_slice(&nonce);
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[][..]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let sealed = encrypt(&aead, &chunk_nonce(i as u64, last), chunk);
        out.extend_from_slice(&sealed);
    }
    armor(&out)
}

/// ChaCha20-Poly1305 encryption into a new buffer.
#[allow(
    clippy::expect_used,
    reason = "encrypting into a Vec fails only past 256 GiB of plaintext; age chunks are 64 KiB"
)]
fn encrypt(aead: &ChaCha20Poly1305, nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    aead.encrypt(Nonce::from_slice(nonce), plaintext)
        .expect("in-memory encryption cannot fail")
}

fn armor(bytes: &[u8]) -> String {
    let b64 = STANDARD.encode(bytes);
    let mut out = String::from(ARMOR_BEGIN);
    out.push('\n');
    for line in b64.as_bytes().chunks(64) {
        // Base64 is ASCII, so this never replaces anything.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    out
}

fn unarmor(text: &str) -> Result<Vec<u8>, SealError> {
    let t = text.trim();
    let inner = t
        .strip_prefix(ARMOR_BEGIN)
        .and_then(|r| r.strip_suffix(ARMOR_END))
        .ok_or_else(|| SealError::Open("not an armored age file".into()))?;
    let b64: String = inner.split_whitespace().collect();
    STANDARD
        .decode(b64)
        .map_err(|e| SealError::Open(format!("the armored text is not base64 ({e})")))
}

/// Decrypt armored age text sealed to `identity`'s recipient.
pub fn open(identity: &Identity, sealed: &str) -> Result<Vec<u8>, SealError> {
    let bytes = unarmor(sealed)?;
    let bad = |why: &str| SealError::Open(why.to_string());
    // Header: lines up to "--- MAC\n".
    let end = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .ok_or_else(|| bad("no age header"))?;
    let mac_line_end = bytes[end + 1..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|p| end + 1 + p)
        .ok_or_else(|| bad("truncated age header"))?;
    let header =
        std::str::from_utf8(&bytes[..end + 4]).map_err(|_| bad("the header is not text"))?;
    let mac_text =
        std::str::from_utf8(&bytes[end + 5..mac_line_end]).map_err(|_| bad("bad header MAC"))?;
    let mut lines = header.lines();
    if lines.next() != Some(INTRO) {
        return Err(bad("not an age v1 file"));
    }
    let recipient = identity.recipient();
    let mut file_key: Option<[u8; 16]> = None;
    while let Some(line) = lines.next() {
        let Some(args) = line.strip_prefix("-> ") else {
            break;
        };
        let body_line = lines.next().ok_or_else(|| bad("truncated stanza"))?;
        let mut parts = args.split(' ');
        if parts.next() != Some("X25519") {
            continue;
        }
        let share: [u8; 32] = parts
            .next()
            .and_then(|s| STANDARD_NO_PAD.decode(s).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("malformed X25519 stanza"))?;
        let body = STANDARD_NO_PAD
            .decode(body_line)
            .map_err(|_| bad("malformed X25519 stanza body"))?;
        let shared = MontgomeryPoint(share).mul_clamped(identity.0).to_bytes();
        if shared == [0u8; 32] {
            return Err(bad("invalid X25519 share"));
        }
        let mut salt = Vec::with_capacity(64);
        salt.extend_from_slice(&share);
        salt.extend_from_slice(&recipient.0);
        let wrap_key = hkdf(&shared, &salt, X25519_INFO);
        if let Ok(key) = ChaCha20Poly1305::new(Key::from_slice(&wrap_key))
            .decrypt(Nonce::from_slice(&[0u8; 12]), body.as_slice())
        {
            if let Ok(k) = key.try_into() {
                file_key = Some(k);
                break;
            }
        }
    }
    let file_key = file_key.ok_or_else(|| {
        bad("this identity cannot open it: it was sealed to another investigator's key")
    })?;
    let mac = STANDARD_NO_PAD
        .decode(mac_text)
        .map_err(|_| bad("bad header MAC"))?;
    if mac != header_mac(&file_key, header) {
        return Err(bad("the header was altered (its MAC does not verify)"));
    }
    let rest = &bytes[mac_line_end + 1..];
    if rest.len() < 16 {
        return Err(bad("truncated payload"));
    }
    let (nonce, body) = rest.split_at(16);
    let aead = ChaCha20Poly1305::new(Key::from_slice(&hkdf(&file_key, nonce, b"payload")));
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + 16).collect();
    if chunks.is_empty() {
        return Err(bad("truncated payload"));
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let plain = aead
            .decrypt(Nonce::from_slice(&chunk_nonce(i as u64, last)), *chunk)
            .map_err(|_| bad("the sealed payload was altered or truncated"))?;
        out.extend_from_slice(&plain);
    }
    Ok(out)
}

/// Bech32 (BIP 173) for age keys: no length limit, lowercase on output.
mod bech32 {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];

    fn polymod(values: &[u8]) -> u32 {
        let mut chk: u32 = 1;
        for v in values {
            let b = chk >> 25;
            chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(*v);
            for (i, g) in GEN.iter().enumerate() {
                if (b >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }

    fn hrp_expand(hrp: &str) -> Vec<u8> {
        let mut v: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
        v.push(0);
        v.extend(hrp.bytes().map(|b| b & 31));
        v
    }

    fn convert(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
        let (mut acc, mut bits) = (0u32, 0u32);
        let mut out = Vec::new();
        let maxv = (1 << to) - 1;
        for &v in data {
            if u32::from(v) >> from != 0 {
                return None;
            }
            acc = (acc << from) | u32::from(v);
            bits += from;
            while bits >= to {
                bits -= to;
                out.push(((acc >> bits) & maxv) as u8);
            }
        }
        if pad {
            if bits > 0 {
                out.push(((acc << (to - bits)) & maxv) as u8);
            }
        } else if bits >= from || ((acc << (to - bits)) & maxv) != 0 {
            return None;
        }
        Some(out)
    }

    pub(super) fn encode(hrp: &str, data: &[u8]) -> String {
        let data5 = convert(data, 8, 5, true).unwrap_or_default();
        let mut values = hrp_expand(hrp);
        values.extend(&data5);
        values.extend([0u8; 6]);
        let pm = polymod(&values) ^ 1;
        let mut out = String::from(hrp);
        out.push('1');
        for d in data5 {
            out.push(CHARSET[d as usize] as char);
        }
        for i in 0..6 {
            out.push(CHARSET[((pm >> (5 * (5 - i))) & 31) as usize] as char);
        }
        out
    }

    pub(super) fn decode(text: &str) -> Result<(String, Vec<u8>), String> {
        let lower = text.to_lowercase();
        if text != lower && text != text.to_uppercase() {
            return Err("mixed case".into());
        }
        let pos = lower.rfind('1').ok_or("no separator")?;
        let (hrp, rest) = (&lower[..pos], &lower[pos + 1..]);
        if hrp.is_empty() || rest.len() < 6 {
            return Err("too short".into());
        }
        let mut data = Vec::with_capacity(rest.len());
        for c in rest.bytes() {
            let v = CHARSET
                .iter()
                .position(|x| *x == c)
                .ok_or_else(|| format!("invalid character {:?}", c as char))?;
            data.push(v as u8);
        }
        let mut values = hrp_expand(hrp);
        values.extend(&data);
        if polymod(&values) != 1 {
            return Err("bad checksum".into());
        }
        let payload = &data[..data.len() - 6];
        let bytes = convert(payload, 5, 8, false).ok_or("bad padding")?;
        Ok((hrp.to_string(), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_only_with_the_right_key() {
        let alice = Identity::generate();
        let other = Identity::generate();
        for size in [0usize, 1, 1000, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&alice.recipient(), &plain);
            assert!(sealed.starts_with(ARMOR_BEGIN));
            assert_eq!(open(&alice, &sealed).unwrap(), plain, "size {size}");
            let err = open(&other, &sealed).unwrap_err();
            assert!(
                err.to_string().contains("another investigator's key"),
                "{err}"
            );
        }
    }

    #[test]
    fn any_alteration_fails() {
        let id = Identity::generate();
        let sealed = seal(&id.recipient(), b"123-45-6789");
        let mut bytes = unarmor(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(open(&id, &armor(&bytes))
            .unwrap_err()
            .to_string()
            .contains("altered"));
        let mut bytes = unarmor(&sealed).unwrap();
        let i = bytes.iter().position(|b| *b == b'\n').unwrap() + 12;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert!(open(&id, &armor(&bytes)).is_err());
    }

    #[test]
    fn keys_use_age_encodings() {
        let id = Identity::generate();
        let secret = id.to_secret_string();
        assert!(secret.starts_with("AGE-SECRET-KEY-1"), "{secret}");
        let text = format!(
            "# created: now\n# public key: {}\n{secret}\n",
            id.recipient()
        );
        let again = Identity::parse(&text).unwrap();
        assert_eq!(again.recipient(), id.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1") && r.len() == 62, "{r}");
        assert_eq!(Recipient::parse(&r).unwrap(), id.recipient());
        assert!(Recipient::parse("age1qqqq").is_err());
        // A known vector from the age specification's test keys.
        let known = Identity::parse(
            "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
        )
        .unwrap();
        assert_eq!(
            known.recipient().to_string(),
            "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
        );
    }
}
