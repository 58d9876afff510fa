//! Messages a client sends (and the gateway sends when it is the client).

use super::{DecodeError, Reader, Writer};

/// Protocol version 3.0 in a StartupMessage.
pub const PROTOCOL_V3: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// The first message on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks to switch to TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption (the gateway declines).
    GssEncRequest,
    /// Out-of-band request to cancel the query running on another session.
    Cancel {
        /// Backend process id the client was given.
        pid: i32,
        /// Secret key the client was given.
        secret: i32,
    },
    /// A StartupMessage with its parameters (`user`, `database`, …).
    Startup {
        /// Requested protocol version.
        version: i32,
        /// Parameters in the order sent.
        params: Vec<(String, String)>,
    },
}

/// Decode a startup-family message body (after the length).
pub fn parse_startup(body: &[u8]) -> Result<StartupPacket, DecodeError> {
    let mut r = Reader::new(body, "startup");
    let code = r.i32()?;
    match code {
        SSL_REQUEST => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST => {
            let pid = r.i32()?;
            let secret = r.i32()?;
            Ok(StartupPacket::Cancel { pid, secret })
        }
        version => {
            let mut params = Vec::new();
            loop {
                let key = r.cstr()?;
                if key.is_empty() {
                    break;
                }
                let value = r.cstr()?;
                params.push((key.to_string(), value.to_string()));
            }
            r.finish()?;
            Ok(StartupPacket::Startup { version, params })
        }
    }
}

/// Encode a StartupMessage (protocol 3.0).
pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut w = Writer::new(0).i32(PROTOCOL_V3);
    for (k, v) in params {
        w = w.cstr(k).cstr(v);
    }
    w.u8(0).finish()
}

/// Encode an SSLRequest (the gateway asking a target for TLS).
pub fn ssl_request() -> Vec<u8> {
    Writer::new(0).i32(SSL_REQUEST).finish()
}

/// Encode a CancelRequest.
pub fn cancel_request(pid: i32, secret: i32) -> Vec<u8> {
    Writer::new(0)
        .i32(CANCEL_REQUEST)
        .i32(pid)
        .i32(secret)
        .finish()
}

/// Decode a PasswordMessage body holding a cleartext password.
pub fn parse_password(body: &[u8]) -> Result<&str, DecodeError> {
    let mut r = Reader::new(body, "PasswordMessage");
    let pw = r.cstr()?;
    r.finish()?;
    Ok(pw)
}

/// Encode a PasswordMessage (cleartext or md5).
pub fn password(pw: &str) -> Vec<u8> {
    Writer::new(b'p').cstr(pw).finish()
}

/// Encode a SASLInitialResponse.
pub fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    Writer::new(b'p').cstr(mechanism).value(Some(data)).finish()
}

/// Encode a SASLResponse.
pub fn sasl_response(data: &[u8]) -> Vec<u8> {
    Writer::new(b'p').bytes(data).finish()
}

/// Decode a simple Query body.
pub fn parse_query(body: &[u8]) -> Result<&str, DecodeError> {
    let mut r = Reader::new(body, "Query");
    let q = r.cstr()?;
    r.finish()?;
    Ok(q)
}

/// Encode a Parse with no parameter types.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    Writer::new(b'P').cstr(name).cstr(sql).i16(0).finish()
}

/// Encode a simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    Writer::new(b'Q').cstr(sql).finish()
}

/// An extended-protocol Parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Prepared statement name ("" is the unnamed statement).
    pub name: &'a str,
    /// The SQL text.
    pub query: &'a str,
    /// Parameter type OIDs the client declared (0: let the server infer).
    pub param_types: Vec<u32>,
}

/// Decode a Parse body (parameter types are relayed untouched).
pub fn parse_parse(body: &[u8]) -> Result<Parse<'_>, DecodeError> {
    let mut r = Reader::new(body, "Parse");
    let name = r.cstr()?;
    let query = r.cstr()?;
    let n = r.count16(4)?;
    let mut param_types = Vec::with_capacity(n);
    for _ in 0..n {
        param_types.push(r.i32()? as u32);
    }
    r.finish()?;
    Ok(Parse {
        name,
        query,
        param_types,
    })
}

/// An extended-protocol Bind: which statement a portal runs, and the
/// result formats the client asked for (masking must honour them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Destination portal ("" is the unnamed portal).
    pub portal: &'a str,
    /// Source prepared statement.
    pub statement: &'a str,
    /// Result-column format codes as sent (empty: all text; one: all that).
    pub result_formats: Vec<i16>,
    /// Parameter format codes as sent (empty: all text; one: all that).
    pub param_formats: Vec<i16>,
    /// Parameter values (`None` is SQL NULL), shown to approvers of a held
    /// statement.
    pub params: Vec<Option<&'a [u8]>>,
}

/// Decode a Bind body.
pub fn parse_bind(body: &[u8]) -> Result<Bind<'_>, DecodeError> {
    let mut r = Reader::new(body, "Bind");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let nfmt = r.count16(2)?;
    let mut param_formats = Vec::with_capacity(nfmt);
    for _ in 0..nfmt {
        param_formats.push(r.i16()?);
    }
    let nparams = r.count16(4)?;
    let mut params = Vec::with_capacity(nparams);
    for _ in 0..nparams {
        params.push(r.value()?);
    }
    let nres = r.count16(2)?;
    let mut result_formats = Vec::with_capacity(nres);
    for _ in 0..nres {
        result_formats.push(r.i16()?);
    }
    r.finish()?;
    Ok(Bind {
        portal,
        statement,
        result_formats,
        param_formats,
        params,
    })
}

/// Describe or Close target: a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `S`: a prepared statement.
    Statement(&'a str),
    /// `P`: a portal.
    Portal(&'a str),
}

/// Decode a Describe or Close body.
pub fn parse_target<'a>(body: &'a [u8], what: &'static str) -> Result<Target<'a>, DecodeError> {
    let mut r = Reader::new(body, what);
    let kind = r.u8()?;
    let name = r.cstr()?;
    r.finish()?;
    match kind {
        b'S' => Ok(Target::Statement(name)),
        b'P' => Ok(Target::Portal(name)),
        _ => Err(DecodeError {
            message: what,
            problem: "target is neither 'S' nor 'P'",
        }),
    }
}

/// A fast-path FunctionCall (libpq's `PQfn`, behind `lo_open`, `lo_read`,
/// `lo_write` and the rest of its large-object API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall<'a> {
    /// The function's OID.
    pub oid: u32,
    /// Argument format codes as sent (empty: all text; one: all that).
    pub arg_formats: Vec<i16>,
    /// Argument values (`None` is SQL NULL).
    pub args: Vec<Option<&'a [u8]>>,
    /// The result's format code.
    pub result_format: i16,
}

impl FunctionCall<'_> {
    /// Argument `i` as an integer, when its bytes are one: 4- or 8-byte
    /// binary, or decimal text.
    pub fn int_arg(&self, i: usize) -> Option<i64> {
        let v = self.args.get(i).copied().flatten()?;
        let format = match self.arg_formats.len() {
            0 => 0,
            1 => self.arg_formats[0],
            _ => *self.arg_formats.get(i)?,
        };
        match (format, v.len()) {
            (1, 4) => Some(i64::from(i32::from_be_bytes(v.try_into().ok()?))),
            (1, 8) => Some(i64::from_be_bytes(v.try_into().ok()?)),
            (0, _) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Decode a FunctionCall body.
pub fn parse_function_call(body: &[u8]) -> Result<FunctionCall<'_>, DecodeError> {
    let mut r = Reader::new(body, "FunctionCall");
    let oid = r.i32()? as u32;
    let nfmt = r.count16(2)?;
    let mut arg_formats = Vec::with_capacity(nfmt);
    for _ in 0..nfmt {
        arg_formats.push(r.i16()?);
    }
    let nargs = r.count16(4)?;
    let mut args = Vec::with_capacity(nargs);
    for _ in 0..nargs {
        args.push(r.value()?);
    }
    let result_format = r.i16()?;
    r.finish()?;
    Ok(FunctionCall {
        oid,
        arg_formats,
        args,
        result_format,
    })
}

/// Decode an Execute body: the portal and the row limit.
pub fn parse_execute(body: &[u8]) -> Result<(&str, i32), DecodeError> {
    let mut r = Reader::new(body, "Execute");
    let portal = r.cstr()?;
    let max_rows = r.i32()?;
    r.finish()?;
    Ok((portal, max_rows))
}

/// Encode a Terminate.
pub fn terminate() -> Vec<u8> {
    Writer::new(b'X').finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn function_call_decodes_integer_arguments() {
        let body = Writer::new(b'F')
            .i32(954)
            .i16(1)
            .i16(1)
            .i16(2)
            .value(Some(&3i32.to_be_bytes()))
            .value(Some(&8192i32.to_be_bytes()))
            .i16(1)
            .finish();
        let call = parse_function_call(&body[5..]).unwrap();
        assert_eq!(call.oid, 954);
        assert_eq!(call.int_arg(0), Some(3));
        assert_eq!(call.int_arg(1), Some(8192));
        assert_eq!(call.int_arg(2), None);
        assert_eq!(call.result_format, 1);
        assert!(parse_function_call(&body[5..body.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn function_call_decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(call) = parse_function_call(&body) {
                for i in 0..call.args.len() + 1 {
                    let _ = call.int_arg(i);
                }
            }
        }
    }

    #[test]
    fn startup_round_trip() {
        let msg = startup(&[("user", "alice"), ("database", "bank")]);
        let parsed = parse_startup(&msg[4..]).unwrap();
        assert_eq!(
            parsed,
            StartupPacket::Startup {
                version: PROTOCOL_V3,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "bank".into())
                ]
            }
        );
        assert_eq!(
            parse_startup(&cancel_request(7, 9)[4..]).unwrap(),
            StartupPacket::Cancel { pid: 7, secret: 9 }
        );
    }

    #[test]
    fn bind_reads_result_formats() {
        let body = Writer::new(b'B')
            .cstr("p1")
            .cstr("s1")
            .i16(1)
            .i16(1)
            .i16(2)
            .value(Some(b"42"))
            .value(None)
            .i16(2)
            .i16(0)
            .i16(1)
            .finish();
        let b = parse_bind(&body[5..]).unwrap();
        assert_eq!((b.portal, b.statement), ("p1", "s1"));
        assert_eq!(b.result_formats, vec![0, 1]);
    }

    #[test]
    fn forged_counts_are_rejected() {
        let body = Writer::new(b'B').cstr("").cstr("").i16(i16::MAX).finish();
        assert!(parse_bind(&body[5..]).is_err());
        let body = Writer::new(b'P').cstr("").cstr("select 1").i16(-1).finish();
        assert!(parse_parse(&body[5..]).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_startup(&data);
            let _ = parse_bind(&data);
            let _ = parse_parse(&data);
            let _ = parse_query(&data);
            let _ = parse_execute(&data);
            let _ = parse_target(&data, "Describe");
            let _ = parse_password(&data);
        }
    }
}
