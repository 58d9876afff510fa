//! Messages a server sends (and the gateway sends when it is the server).

use super::{DecodeError, Reader, Writer};

/// An Authentication request from the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// Logged in.
    Ok,
    /// Send the password in clear.
    Cleartext,
    /// Send md5(md5(password + user) + salt).
    Md5([u8; 4]),
    /// Start SASL with one of these mechanisms.
    Sasl(Vec<&'a str>),
    /// A SASL challenge.
    SaslContinue(&'a [u8]),
    /// The SASL outcome (server signature).
    SaslFinal(&'a [u8]),
    /// Something the gateway does not speak (Kerberos, GSS, SSPI).
    Unsupported(i32),
}

/// Decode an Authentication (`R`) body.
pub fn parse_authentication(body: &[u8]) -> Result<Authentication<'_>, DecodeError> {
    let mut r = Reader::new(body, "Authentication");
    Ok(match r.i32()? {
        0 => Authentication::Ok,
        3 => Authentication::Cleartext,
        5 => {
            let s = r.bytes(4)?;
            Authentication::Md5([s[0], s[1], s[2], s[3]])
        }
        10 => {
            let mut mechs = Vec::new();
            loop {
                let m = r.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechs.push(m);
            }
            Authentication::Sasl(mechs)
        }
        11 => Authentication::SaslContinue(r.remaining()),
        12 => Authentication::SaslFinal(r.remaining()),
        other => Authentication::Unsupported(other),
    })
}

/// AuthenticationOk.
pub fn auth_ok() -> Vec<u8> {
    Writer::new(b'R').i32(0).finish()
}

/// AuthenticationCleartextPassword: the client's token comes as the password.
pub fn auth_cleartext() -> Vec<u8> {
    Writer::new(b'R').i32(3).finish()
}

/// Decode BackendKeyData: (pid, secret).
pub fn parse_backend_key(body: &[u8]) -> Result<(i32, i32), DecodeError> {
    let mut r = Reader::new(body, "BackendKeyData");
    let pid = r.i32()?;
    let secret = r.i32()?;
    Ok((pid, secret))
}

/// Encode BackendKeyData.
pub fn backend_key(pid: i32, secret: i32) -> Vec<u8> {
    Writer::new(b'K').i32(pid).i32(secret).finish()
}

/// Encode ReadyForQuery with a transaction status (`I`, `T` or `E`).
pub fn ready_for_query(status: u8) -> Vec<u8> {
    Writer::new(b'Z').u8(status).finish()
}

/// Decode ReadyForQuery's transaction status.
pub fn parse_ready_for_query(body: &[u8]) -> Result<u8, DecodeError> {
    let mut r = Reader::new(body, "ReadyForQuery");
    r.u8()
}

/// Decode ParameterDescription: the type OID of each parameter.
pub fn parse_parameter_description(body: &[u8]) -> Result<Vec<u32>, DecodeError> {
    let mut r = Reader::new(body, "ParameterDescription");
    let n = r.count16(4)?;
    let mut types = Vec::with_capacity(n);
    for _ in 0..n {
        types.push(r.i32()? as u32);
    }
    r.finish()?;
    Ok(types)
}

/// Decode CommandComplete's tag (`SELECT 3`, `DELETE 1`).
pub fn parse_command_complete(body: &[u8]) -> Result<&str, DecodeError> {
    Reader::new(body, "CommandComplete").cstr()
}

/// Rows affected or returned, from a CommandComplete tag.
pub fn rows_from_tag(tag: &str) -> Option<u64> {
    let last = tag.rsplit(' ').next()?;
    if tag.contains(' ') {
        last.parse().ok()
    } else {
        None
    }
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name as the client will see it.
    pub name: String,
    /// Source table OID, 0 if not a plain column.
    pub table_oid: i32,
    /// Source column number, 0 if not a plain column.
    pub column: i16,
    /// Data type OID.
    pub type_oid: i32,
    /// Type size (negative for variable length).
    pub type_len: i16,
    /// Type modifier.
    pub type_mod: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Decode a RowDescription.
pub fn parse_row_description(body: &[u8]) -> Result<Vec<Field>, DecodeError> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.count16(19)?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(Field {
            name: r.cstr()?.to_string(),
            table_oid: r.i32()?,
            column: r.i16()?,
            type_oid: r.i32()?,
            type_len: r.i16()?,
            type_mod: r.i32()?,
            format: r.i16()?,
        });
    }
    r.finish()?;
    Ok(fields)
}

/// Encode a RowDescription.
pub fn row_description(fields: &[Field]) -> Vec<u8> {
    let mut w = Writer::new(b'T').i16(fields.len() as i16);
    for f in fields {
        w = w
            .cstr(&f.name)
            .i32(f.table_oid)
            .i16(f.column)
            .i32(f.type_oid)
            .i16(f.type_len)
            .i32(f.type_mod)
            .i16(f.format);
    }
    w.finish()
}

/// Decode a DataRow's values as slices of the body (no copy).
pub fn parse_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, DecodeError> {
    let mut r = Reader::new(body, "DataRow");
    let n = r.count16(4)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(r.value()?);
    }
    r.finish()?;
    Ok(values)
}

/// Encode a DataRow.
pub fn data_row<'a>(values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) -> Vec<u8> {
    let mut w = Writer::new(b'D').i16(values.len() as i16);
    for v in values {
        w = w.value(v);
    }
    w.finish()
}

/// The fields of an ErrorResponse or NoticeResponse, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notice {
    /// (field code, text) pairs: `S` severity, `C` SQLSTATE, `M` message, `D` detail, …
    pub fields: Vec<(u8, String)>,
}

impl Notice {
    /// A gateway-originated error or notice with SQLSTATE, message and hint.
    pub fn new(severity: &str, sqlstate: &str, message: &str, hint: Option<&str>) -> Notice {
        let mut fields = vec![
            (b'S', severity.to_string()),
            (b'V', severity.to_string()),
            (b'C', sqlstate.to_string()),
            (b'M', message.to_string()),
        ];
        if let Some(h) = hint {
            fields.push((b'H', h.to_string()));
        }
        Notice { fields }
    }

    /// The value of one field.
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// Encode as an ErrorResponse (`E`) or NoticeResponse (`N`).
    pub fn encode(&self, tag: u8) -> Vec<u8> {
        let mut w = Writer::new(tag);
        for (code, text) in &self.fields {
            w = w.u8(*code).cstr(text);
        }
        w.u8(0).finish()
    }
}

/// Decode an ErrorResponse or NoticeResponse body.
pub fn parse_notice(body: &[u8]) -> Result<Notice, DecodeError> {
    let mut r = Reader::new(body, "ErrorResponse");
    let mut fields = Vec::new();
    loop {
        let code = r.u8()?;
        if code == 0 {
            break;
        }
        // Servers may send non-UTF-8 text in odd encodings; keep it lossy
        // rather than failing the session.
        let start = r.remaining();
        let end = start.iter().position(|&b| b == 0).ok_or(DecodeError {
            message: "ErrorResponse",
            problem: "field not terminated",
        })?;
        let text = String::from_utf8_lossy(&start[..end]).into_owned();
        r.bytes(end + 1)?;
        fields.push((code, text));
    }
    Ok(Notice { fields })
}

/// Decode ParameterStatus: (name, value).
pub fn parse_parameter_status(body: &[u8]) -> Result<(&str, &str), DecodeError> {
    let mut r = Reader::new(body, "ParameterStatus");
    let k = r.cstr()?;
    let v = r.cstr()?;
    Ok((k, v))
}

/// Encode ParameterStatus.
pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    Writer::new(b'S').cstr(name).cstr(value).finish()
}

/// A NotificationResponse (`A`): a `NOTIFY` delivered to a `LISTEN`er.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    /// The notifying backend's process id.
    pub pid: i32,
    /// The channel.
    pub channel: &'a str,
    /// The payload (any text the notifier chose).
    pub payload: &'a str,
}

/// Decode a NotificationResponse body.
pub fn parse_notification(body: &[u8]) -> Result<Notification<'_>, DecodeError> {
    let mut r = Reader::new(body, "NotificationResponse");
    let pid = r.i32()?;
    let channel = r.cstr()?;
    let payload = r.cstr()?;
    Ok(Notification {
        pid,
        channel,
        payload,
    })
}

/// Encode a NotificationResponse.
pub fn notification(n: &Notification<'_>) -> Vec<u8> {
    Writer::new(b'A')
        .i32(n.pid)
        .cstr(n.channel)
        .cstr(n.payload)
        .finish()
}

/// Decode CopyInResponse/CopyOutResponse/CopyBothResponse: overall format
/// and per-column formats.
pub fn parse_copy_response(body: &[u8]) -> Result<(u8, Vec<i16>), DecodeError> {
    let mut r = Reader::new(body, "CopyResponse");
    let format = r.u8()?;
    let n = r.count16(2)?;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        cols.push(r.i16()?);
    }
    Ok((format, cols))
}

/// Encode CopyData.
pub fn copy_data(data: &[u8]) -> Vec<u8> {
    Writer::new(b'd').bytes(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn notification_round_trip() {
        let n = Notification {
            pid: 42,
            channel: "ch1",
            payload: "hello",
        };
        let bytes = notification(&n);
        assert_eq!(bytes[0], b'A');
        assert_eq!(parse_notification(&bytes[5..]).unwrap(), n);
    }

    #[test]
    fn row_description_round_trip() {
        let f = vec![Field {
            name: "ssn".into(),
            table_oid: 16384,
            column: 3,
            type_oid: 25,
            type_len: -1,
            type_mod: -1,
            format: 0,
        }];
        let enc = row_description(&f);
        assert_eq!(parse_row_description(&enc[5..]).unwrap(), f);
    }

    #[test]
    fn data_row_round_trip_with_null() {
        let enc = data_row(vec![Some(&b"a"[..]), None, Some(&b""[..])].into_iter());
        assert_eq!(
            parse_data_row(&enc[5..]).unwrap(),
            vec![Some(&b"a"[..]), None, Some(&b""[..])]
        );
    }

    #[test]
    fn notice_round_trip_and_tags() {
        let n = Notice::new("ERROR", "42501", "blocked by rule x", Some("ask"));
        let enc = n.encode(b'E');
        assert_eq!(parse_notice(&enc[5..]).unwrap(), n);
        assert_eq!(rows_from_tag("SELECT 3"), Some(3));
        assert_eq!(rows_from_tag("INSERT 0 7"), Some(7));
        assert_eq!(rows_from_tag("BEGIN"), None);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_notification(&data);
            let _ = parse_authentication(&data);
            let _ = parse_row_description(&data);
            let _ = parse_data_row(&data);
            let _ = parse_notice(&data);
            let _ = parse_copy_response(&data);
            let _ = parse_parameter_status(&data);
        }
    }
}
