//! The gateway's own login to the target database.
//!
//! The caller never sees this credential: the gateway opens a fresh
//! connection per session and authenticates with SCRAM-SHA-256, md5,
//! cleartext or trust, whatever the target asks for, over TLS when the
//! connection requires it (see [`stream`]).

use crate::codec::backend::{self, Authentication};
use crate::codec::{frame, frontend};
use bytes::BytesMut;
use gatehouse_core::policy::{ConnectionConfig, Credential};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod stream;
pub use stream::{split, TargetReader, TargetStream, TargetWriter};

/// A logged-in target connection and what the target told us at start-up.
pub struct TargetSession {
    /// The connection, positioned after the first ReadyForQuery.
    pub stream: TargetStream,
    /// Bytes already read past the first ReadyForQuery.
    pub leftover: BytesMut,
    /// ParameterStatus messages to relay to the client, raw.
    pub parameter_status: Vec<Vec<u8>>,
    /// The target's cancel key (pid, secret).
    pub backend_key: Option<(i32, i32)>,
}

pub use gatehouse_core::target::TargetError;

/// Connect and log in to `conn` with the gateway's credential, passing the
/// client's harmless start-up parameters along.
pub async fn connect(
    conn: &ConnectionConfig,
    client_params: &[(String, String)],
) -> Result<TargetSession, TargetError> {
    let mut stream = stream::open(conn).await?;
    let credential = conn.credential().map_err(TargetError::Credential)?;
    let mut params: Vec<(&str, &str)> =
        vec![("user", &conn.user), ("database", conn.database_name())];
    let from_options: Vec<(String, String)> = client_params
        .iter()
        .filter(|(k, _)| k == "options")
        .flat_map(|(_, v)| options_settings(v))
        .collect();
    for (k, v) in client_params.iter().chain(&from_options) {
        // Parameter names are case-insensitive (libpq sends `PGTZ` as
        // `timezone`).
        if PASSED_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k)) {
            params.push((k, v));
        }
    }
    stream.write_all(&frontend::startup(&params)).await?;
    login(stream, &conn.user, credential.as_ref()).await
}

/// The settings an `options` start-up parameter (`PGOPTIONS`) asks for:
/// `-c name=value`, `-cname=value` and `--name=value`, separated by
/// spaces, a backslash keeping the next character (as the server reads
/// it). Only those in [`PASSED_PARAMS`] are relayed, as parameters of
/// their own; `options` itself never is.
fn options_settings(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let setting = if words[i] == "-c" {
            i += 1;
            words.get(i).map(String::as_str)
        } else {
            words[i]
                .strip_prefix("--")
                .or_else(|| words[i].strip_prefix("-c"))
        };
        if let Some((name, value)) = setting.and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
        i += 1;
    }
    out
}

/// Start-up parameters relayed from the client. `options` is not among
/// them: it can set arbitrary server settings behind policy's back; the
/// settings it names that are listed here are relayed on their own.
const PASSED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
];

async fn login(
    mut stream: TargetStream,
    user: &str,
    credential: Option<&Credential>,
) -> Result<TargetSession, TargetError> {
    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<ScramSha256> = None;
    let mut parameter_status = Vec::new();
    let mut backend_key = None;
    let need = |c: Option<&Credential>| {
        c.cloned().ok_or_else(|| {
            TargetError::Refused(
                "the target asks for a password but the connection has no password_env or password_file".into(),
            )
        })
    };
    loop {
        let frame = loop {
            match frame::take_tagged(&mut buf, 1 << 20) {
                Ok(Some(f)) => break f,
                Ok(None) => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Err(TargetError::Protocol("target closed the connection".into()));
                    }
                }
                Err(e) => return Err(TargetError::Protocol(e.to_string())),
            }
        };
        match frame.tag {
            b'R' => {
                let auth = backend::parse_authentication(&frame.body)
                    .map_err(|e| TargetError::Protocol(e.to_string()))?;
                match auth {
                    Authentication::Ok => {}
                    Authentication::Cleartext => {
                        let pw = need(credential)?;
                        stream.write_all(&frontend::password(pw.expose())).await?;
                    }
                    Authentication::Md5(salt) => {
                        let pw = need(credential)?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            user.as_bytes(),
                            pw.expose().as_bytes(),
                            salt,
                        );
                        stream.write_all(&frontend::password(&hash)).await?;
                    }
                    Authentication::Sasl(mechs) => {
                        if !mechs.contains(&"SCRAM-SHA-256") {
                            return Err(TargetError::Refused(format!(
                                "target offers SASL mechanisms {mechs:?}; gatehouse speaks SCRAM-SHA-256"
                            )));
                        }
                        let pw = need(credential)?;
                        let s = ScramSha256::new(pw.expose().as_bytes(), ChannelBinding::unsupported());
                        stream
                            .write_all(&frontend::sasl_initial("SCRAM-SHA-256", s.message()))
                            .await?;
                        scram = Some(s);
                    }
                    Authentication::SaslContinue(data) => {
                        let s = scram.as_mut().ok_or_else(|| {
                            TargetError::Protocol("SASL continue without SASL start".into())
                        })?;
                        s.update(data)
                            .map_err(|e| TargetError::Refused(format!("SCRAM: {e}")))?;
                        stream.write_all(&frontend::sasl_response(s.message())).await?;
                    }
                    Authentication::SaslFinal(data) => {
                        let mut s = scram.take().ok_or_else(|| {
                            TargetError::Protocol("SASL final without SASL start".into())
                        })?;
                        s.finish(data).map_err(|e| {
                            TargetError::Refused(format!("target's SCRAM signature is invalid: {e}"))
                        })?;
                    }
                    Authentication::Unsupported(code) => {
                        return Err(TargetError::Refused(format!(
                            "target asks for authentication method {code}, which gatehouse does not speak"
                        )))
                    }
                }
            }
            b'S' => parameter_status.push(frame.raw.to_vec()),
            b'K' => {
                backend_key = Some(
                    backend::parse_backend_key(&frame.body)
                        .map_err(|e| TargetError::Protocol(e.to_string()))?,
                )
            }
            b'N' => {}
            b'E' => {
                let notice = backend::parse_notice(&frame.body)
                    .map_err(|e| TargetError::Protocol(e.to_string()))?;
                return Err(TargetError::Refused(
                    notice.get(b'M').unwrap_or("unknown error").to_string(),
                ));
            }
            b'Z' => {
                return Ok(TargetSession {
                    stream,
                    leftover: buf,
                    parameter_status,
                    backend_key,
                })
            }
            other => {
                return Err(TargetError::Protocol(format!(
                    "unexpected message '{}' during login",
                    other as char
                )))
            }
        }
    }
}

/// Send a CancelRequest for `key` to `conn`'s target, over TLS when the
/// connection requires it (the key is the gateway's session's).
pub async fn cancel(conn: &ConnectionConfig, key: (i32, i32)) -> std::io::Result<()> {
    let mut s = stream::open(conn).await.map_err(std::io::Error::other)?;
    s.write_all(&frontend::cancel_request(key.0, key.1)).await?;
    // The server closes the connection when done; wait briefly for that.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut sink)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_settings_are_read_as_the_server_reads_them() {
        let got = options_settings("-c intervalstyle=postgres_verbose --DateStyle=ISO,\\ MDY -cwork_mem=1MB -c search_path=evil");
        assert_eq!(
            got,
            vec![
                ("intervalstyle".to_string(), "postgres_verbose".to_string()),
                ("DateStyle".to_string(), "ISO, MDY".to_string()),
                ("work_mem".to_string(), "1MB".to_string()),
                ("search_path".to_string(), "evil".to_string()),
            ]
        );
        assert!(options_settings("-c").is_empty());
    }
}
