//! The packets the gateway reads and writes: the handshake, the client's
//! response, auth switches, OK/ERR/EOF, column definitions and the
//! prepared-statement responses.

use super::{put_lenenc_bytes, put_lenenc_int, DecodeError, Reader};

/// Capability flags (`CLIENT_*`).
pub mod cap {
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const COMPRESS: u32 = 1 << 5;
    pub const ODBC: u32 = 1 << 6;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const IGNORE_SIGPIPE: u32 = 1 << 12;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const RESERVED: u32 = 1 << 14;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
    pub const CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    pub const OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
    pub const ZSTD_COMPRESSION: u32 = 1 << 26;
    pub const QUERY_ATTRIBUTES: u32 = 1 << 27;

    /// What the gateway offers clients and asks of targets. Left out on
    /// purpose, because the gateway could not enforce policy through them:
    /// `LOCAL_FILES` (the server could read any file of the client's),
    /// `COMPRESS`/`ZSTD_COMPRESSION` (opaque to inspection), and the
    /// metadata/attribute/EOF extensions whose formats it does not rewrite
    /// (`DEPRECATE_EOF`, `SESSION_TRACK`, `OPTIONAL_RESULTSET_METADATA`,
    /// `QUERY_ATTRIBUTES`). Clients negotiate down, as with any server.
    pub const GATEWAY: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | ODBC
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | SSL
        | IGNORE_SIGPIPE
        | TRANSACTIONS
        | RESERVED
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | PLUGIN_AUTH_LENENC_DATA
        | CAN_HANDLE_EXPIRED_PASSWORDS;
}

/// Server status flags.
pub mod status {
    pub const IN_TRANS: u16 = 1;
    pub const AUTOCOMMIT: u16 = 2;
    pub const MORE_RESULTS_EXISTS: u16 = 8;
    pub const CURSOR_EXISTS: u16 = 0x40;
    pub const LAST_ROW_SENT: u16 = 0x80;
    pub const NO_BACKSLASH_ESCAPES: u16 = 0x200;
}

/// Command bytes (`COM_*`).
pub mod com {
    pub const SLEEP: u8 = 0x00;
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_KILL: u8 = 0x0c;
    pub const DEBUG: u8 = 0x0d;
    pub const PING: u8 = 0x0e;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// `utf8mb4_general_ci`, the character set of columns the gateway rewrites.
pub const UTF8MB4_GENERAL_CI: u16 = 45;
/// The `binary` pseudo character set.
pub const BINARY_CHARSET: u16 = 63;

/// The server's first packet (Protocol::HandshakeV10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Server version string.
    pub server_version: String,
    /// Connection (thread) id.
    pub connection_id: u32,
    /// The scramble (20 bytes for the usual plugins; 32 for ed25519).
    pub scramble: Vec<u8>,
    /// Capability flags (lower and upper halves).
    pub capabilities: u32,
    /// Default character set.
    pub charset: u8,
    /// Status flags.
    pub status: u16,
    /// Default authentication plugin.
    pub auth_plugin: String,
}

/// Read the server's handshake.
pub fn parse_handshake(payload: &[u8]) -> Result<Handshake, DecodeError> {
    let mut r = Reader::new(payload, "handshake");
    let version = r.u8()?;
    if version != 10 {
        return Err(DecodeError::Invalid("handshake protocol version"));
    }
    let server_version = String::from_utf8_lossy(r.nul_str()?).into_owned();
    let connection_id = r.u32()?;
    let mut scramble = r.bytes(8)?.to_vec();
    r.u8()?;
    let mut capabilities = r.u16()? as u32;
    let (mut charset, mut status, mut auth_len) = (0, 0, 0);
    if !r.is_empty() {
        charset = r.u8()?;
        status = r.u16()?;
        capabilities |= (r.u16()? as u32) << 16;
        auth_len = r.u8()? as usize;
        r.bytes(10)?;
    }
    if capabilities & cap::SECURE_CONNECTION != 0 && !r.is_empty() {
        let n = auth_len.saturating_sub(8).max(13);
        let part2 = r.bytes(n.min(r.rest().len()))?;
        // The second part ends with a NUL that is not part of the scramble.
        let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
        scramble.extend_from_slice(part2);
    }
    let auth_plugin = if capabilities & cap::PLUGIN_AUTH != 0 {
        String::from_utf8_lossy(r.nul_or_eof_str()).into_owned()
    } else {
        String::new()
    };
    Ok(Handshake {
        server_version,
        connection_id,
        scramble,
        capabilities,
        charset,
        status,
        auth_plugin,
    })
}

/// Write a handshake (the gateway's greeting to its clients).
pub fn handshake(h: &Handshake) -> Vec<u8> {
    let mut out = vec![10];
    out.extend_from_slice(h.server_version.as_bytes());
    out.push(0);
    out.extend_from_slice(&h.connection_id.to_le_bytes());
    let (p1, p2) = h.scramble.split_at(8.min(h.scramble.len()));
    out.extend_from_slice(p1);
    out.push(0);
    out.extend_from_slice(&(h.capabilities as u16).to_le_bytes());
    out.push(h.charset);
    out.extend_from_slice(&h.status.to_le_bytes());
    out.extend_from_slice(&((h.capabilities >> 16) as u16).to_le_bytes());
    out.push((h.scramble.len() + 1) as u8);
    out.extend_from_slice(&[0; 10]);
    out.extend_from_slice(p2);
    out.push(0);
    out.extend_from_slice(h.auth_plugin.as_bytes());
    out.push(0);
    out
}

/// The client's answer to the handshake (HandshakeResponse41), or the
/// short SSLRequest that precedes TLS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// Client capability flags.
    pub capabilities: u32,
    /// Largest packet the client accepts.
    pub max_packet: u32,
    /// Character set.
    pub charset: u8,
    /// True for an SSLRequest (nothing after the fixed part).
    pub ssl_request: bool,
    /// User name.
    pub user: String,
    /// Authentication response.
    pub auth: Vec<u8>,
    /// Database, when `CONNECT_WITH_DB`.
    pub database: Option<String>,
    /// Plugin the auth response is for.
    pub auth_plugin: Option<String>,
    /// Connection attributes (`program_name`, …), when sent.
    pub attributes: Vec<(String, String)>,
}

/// Read a HandshakeResponse41 or an SSLRequest.
pub fn parse_handshake_response(payload: &[u8]) -> Result<HandshakeResponse, DecodeError> {
    let mut r = Reader::new(payload, "handshake response");
    let capabilities = r.u32()?;
    if capabilities & cap::PROTOCOL_41 == 0 {
        return Err(DecodeError::Invalid(
            "handshake response (pre-4.1 protocol is not supported)",
        ));
    }
    let max_packet = r.u32()?;
    let charset = r.u8()?;
    r.bytes(23)?;
    let mut resp = HandshakeResponse {
        capabilities,
        max_packet,
        charset,
        ..Default::default()
    };
    if r.is_empty() {
        resp.ssl_request = true;
        return Ok(resp);
    }
    resp.user = String::from_utf8_lossy(r.nul_str()?).into_owned();
    resp.auth = if capabilities & cap::PLUGIN_AUTH_LENENC_DATA != 0 {
        r.lenenc_str()?.to_vec()
    } else if capabilities & cap::SECURE_CONNECTION != 0 {
        let n = r.u8()? as usize;
        r.bytes(n)?.to_vec()
    } else {
        r.nul_str()?.to_vec()
    };
    if capabilities & cap::CONNECT_WITH_DB != 0 && !r.is_empty() {
        let db = r.nul_or_eof_str();
        if !db.is_empty() {
            resp.database = Some(String::from_utf8_lossy(db).into_owned());
        }
    }
    if capabilities & cap::PLUGIN_AUTH != 0 && !r.is_empty() {
        resp.auth_plugin = Some(String::from_utf8_lossy(r.nul_or_eof_str()).into_owned());
    }
    if capabilities & cap::CONNECT_ATTRS != 0 && !r.is_empty() {
        let total = r.lenenc_int()?.unwrap_or(0) as usize;
        let attrs = r.bytes(total.min(r.rest().len()))?;
        let mut a = Reader::new(attrs, "connection attributes");
        while !a.is_empty() {
            let k = a.lenenc_str()?;
            let v = a.lenenc_str()?;
            resp.attributes.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
    }
    Ok(resp)
}

/// Write a HandshakeResponse41 (the gateway's login to a target), or an
/// SSLRequest when `r.ssl_request`.
pub fn handshake_response(r: &HandshakeResponse) -> Vec<u8> {
    let mut caps = r.capabilities | cap::PROTOCOL_41;
    if r.database.is_some() {
        caps |= cap::CONNECT_WITH_DB;
    } else {
        caps &= !cap::CONNECT_WITH_DB;
    }
    if r.attributes.is_empty() {
        caps &= !cap::CONNECT_ATTRS;
    } else {
        caps |= cap::CONNECT_ATTRS;
    }
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&caps.to_le_bytes());
    out.extend_from_slice(&r.max_packet.to_le_bytes());
    out.push(r.charset);
    out.extend_from_slice(&[0; 23]);
    if r.ssl_request {
        return out;
    }
    out.extend_from_slice(r.user.as_bytes());
    out.push(0);
    if caps & cap::PLUGIN_AUTH_LENENC_DATA != 0 {
        put_lenenc_bytes(&mut out, &r.auth);
    } else {
        out.push(r.auth.len().min(255) as u8);
        out.extend_from_slice(&r.auth[..r.auth.len().min(255)]);
    }
    if let Some(db) = &r.database {
        out.extend_from_slice(db.as_bytes());
        out.push(0);
    }
    if caps & cap::PLUGIN_AUTH != 0 {
        out.extend_from_slice(r.auth_plugin.as_deref().unwrap_or("").as_bytes());
        out.push(0);
    }
    if caps & cap::CONNECT_ATTRS != 0 {
        let mut attrs = Vec::new();
        for (k, v) in &r.attributes {
            put_lenenc_bytes(&mut attrs, k.as_bytes());
            put_lenenc_bytes(&mut attrs, v.as_bytes());
        }
        put_lenenc_bytes(&mut out, &attrs);
    }
    out
}

/// An AuthSwitchRequest: use `plugin` with `data`.
pub fn auth_switch(plugin: &str, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0xfe];
    out.extend_from_slice(plugin.as_bytes());
    out.push(0);
    out.extend_from_slice(data);
    out
}

/// Read an AuthSwitchRequest: (plugin, data).
pub fn parse_auth_switch(payload: &[u8]) -> Result<(String, Vec<u8>), DecodeError> {
    let mut r = Reader::new(payload, "auth switch request");
    if r.u8()? != 0xfe {
        return Err(DecodeError::Invalid("auth switch request"));
    }
    let plugin = String::from_utf8_lossy(r.nul_or_eof_str()).into_owned();
    let data = r.rest();
    let data = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
    Ok((plugin, data))
}

/// An OK packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ok {
    /// Rows affected.
    pub affected_rows: u64,
    /// Last insert id.
    pub last_insert_id: u64,
    /// Status flags.
    pub status: u16,
    /// Warnings.
    pub warnings: u16,
    /// Human-readable info.
    pub info: String,
}

/// Write an OK packet (`header` 0x00, or 0xfe where it replaces EOF).
pub fn ok(o: &Ok) -> Vec<u8> {
    let mut out = vec![0x00];
    put_lenenc_int(&mut out, o.affected_rows);
    put_lenenc_int(&mut out, o.last_insert_id);
    out.extend_from_slice(&o.status.to_le_bytes());
    out.extend_from_slice(&o.warnings.to_le_bytes());
    out.extend_from_slice(o.info.as_bytes());
    out
}

/// Read an OK packet (protocol 4.1, no session tracking).
pub fn parse_ok(payload: &[u8]) -> Result<Ok, DecodeError> {
    let mut r = Reader::new(payload, "OK packet");
    let h = r.u8()?;
    if h != 0x00 && h != 0xfe {
        return Err(DecodeError::Invalid("OK packet"));
    }
    let affected_rows = r.lenenc_int()?.unwrap_or(0);
    let last_insert_id = r.lenenc_int()?.unwrap_or(0);
    let status = r.u16()?;
    let warnings = r.u16()?;
    let info = String::from_utf8_lossy(r.rest()).into_owned();
    Ok(Ok {
        affected_rows,
        last_insert_id,
        status,
        warnings,
        info,
    })
}

/// An ERR packet's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Err {
    /// Error number (1142 for a refused command).
    pub code: u16,
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// Message.
    pub message: String,
}

/// Write an ERR packet.
pub fn err(code: u16, sqlstate: &str, message: &str) -> Vec<u8> {
    let mut out = vec![0xff];
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    for (i, b) in sqlstate.bytes().take(5).enumerate() {
        state[i] = b;
    }
    out.extend_from_slice(&state);
    out.extend_from_slice(message.as_bytes());
    out
}

/// Read an ERR packet.
pub fn parse_err(payload: &[u8]) -> Result<Err, DecodeError> {
    let mut r = Reader::new(payload, "ERR packet");
    if r.u8()? != 0xff {
        return Err(DecodeError::Invalid("ERR packet"));
    }
    let code = r.u16()?;
    let mut sqlstate = String::new();
    if r.rest().first() == Some(&b'#') {
        r.u8()?;
        sqlstate = String::from_utf8_lossy(r.bytes(5)?).into_owned();
    }
    Ok(Err {
        code,
        sqlstate,
        message: String::from_utf8_lossy(r.rest()).into_owned(),
    })
}

/// Whether a payload is an EOF packet (0xfe and shorter than 9 bytes, so a
/// row starting with an 8-byte length prefix is not mistaken for one).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xfe) && payload.len() < 9
}

/// Write an EOF packet.
pub fn eof(warnings: u16, status: u16) -> Vec<u8> {
    let mut out = vec![0xfe];
    out.extend_from_slice(&warnings.to_le_bytes());
    out.extend_from_slice(&status.to_le_bytes());
    out
}

/// Status flags of an EOF packet (0 when absent).
pub fn eof_status(payload: &[u8]) -> u16 {
    match payload {
        [0xfe, _, _, a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    }
}

/// Column types (`MYSQL_TYPE_*`).
pub mod ty {
    pub const DECIMAL: u8 = 0x00;
    pub const TINY: u8 = 0x01;
    pub const SHORT: u8 = 0x02;
    pub const LONG: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const NULL: u8 = 0x06;
    pub const TIMESTAMP: u8 = 0x07;
    pub const LONGLONG: u8 = 0x08;
    pub const INT24: u8 = 0x09;
    pub const DATE: u8 = 0x0a;
    pub const TIME: u8 = 0x0b;
    pub const DATETIME: u8 = 0x0c;
    pub const YEAR: u8 = 0x0d;
    pub const NEWDATE: u8 = 0x0e;
    pub const VARCHAR: u8 = 0x0f;
    pub const BIT: u8 = 0x10;
    pub const TIMESTAMP2: u8 = 0x11;
    pub const DATETIME2: u8 = 0x12;
    pub const TIME2: u8 = 0x13;
    pub const JSON: u8 = 0xf5;
    pub const NEWDECIMAL: u8 = 0xf6;
    pub const ENUM: u8 = 0xf7;
    pub const SET: u8 = 0xf8;
    pub const TINY_BLOB: u8 = 0xf9;
    pub const MEDIUM_BLOB: u8 = 0xfa;
    pub const LONG_BLOB: u8 = 0xfb;
    pub const BLOB: u8 = 0xfc;
    pub const VAR_STRING: u8 = 0xfd;
    pub const STRING: u8 = 0xfe;
    pub const GEOMETRY: u8 = 0xff;
}

/// Column flag: the integer is unsigned.
pub const UNSIGNED_FLAG: u16 = 0x20;

/// A column definition (Protocol::ColumnDefinition41).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    /// Catalog (always `def`).
    pub catalog: Vec<u8>,
    /// Schema.
    pub schema: Vec<u8>,
    /// Table alias.
    pub table: Vec<u8>,
    /// Table.
    pub org_table: Vec<u8>,
    /// Column name or alias, as the client sees it.
    pub name: Vec<u8>,
    /// Column name in the table.
    pub org_name: Vec<u8>,
    /// Character set.
    pub charset: u16,
    /// Display length.
    pub length: u32,
    /// Type (`ty::*`).
    pub column_type: u8,
    /// Flags.
    pub flags: u16,
    /// Decimals.
    pub decimals: u8,
    /// Anything after the fixed part (COM_FIELD_LIST default values).
    pub trailer: Vec<u8>,
}

impl Column {
    /// The name as text.
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Read a column definition.
pub fn parse_column(payload: &[u8]) -> Result<Column, DecodeError> {
    let mut r = Reader::new(payload, "column definition");
    let catalog = r.lenenc_str()?.to_vec();
    let schema = r.lenenc_str()?.to_vec();
    let table = r.lenenc_str()?.to_vec();
    let org_table = r.lenenc_str()?.to_vec();
    let name = r.lenenc_str()?.to_vec();
    let org_name = r.lenenc_str()?.to_vec();
    let fixed = r.lenenc_int()?.unwrap_or(0);
    if fixed < 0x0c {
        return Err(DecodeError::Invalid("column definition"));
    }
    let charset = r.u16()?;
    let length = r.u32()?;
    let column_type = r.u8()?;
    let flags = r.u16()?;
    let decimals = r.u8()?;
    r.bytes(2)?;
    Ok(Column {
        catalog,
        schema,
        table,
        org_table,
        name,
        org_name,
        charset,
        length,
        column_type,
        flags,
        decimals,
        trailer: r.rest().to_vec(),
    })
}

/// Write a column definition.
pub fn column(c: &Column) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for f in [
        &c.catalog,
        &c.schema,
        &c.table,
        &c.org_table,
        &c.name,
        &c.org_name,
    ] {
        put_lenenc_bytes(&mut out, f);
    }
    out.push(0x0c);
    out.extend_from_slice(&c.charset.to_le_bytes());
    out.extend_from_slice(&c.length.to_le_bytes());
    out.push(c.column_type);
    out.extend_from_slice(&c.flags.to_le_bytes());
    out.push(c.decimals);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&c.trailer);
    out
}

/// The column a masked value is announced as: a `utf8mb4` VAR_STRING, so
/// text- and binary-protocol clients alike decode the masked text (a masked
/// number is a string from then on).
pub fn as_masked_string(c: &Column) -> Column {
    Column {
        charset: UTF8MB4_GENERAL_CI,
        length: c.length.max(64 * 4),
        column_type: ty::VAR_STRING,
        // Keep NOT_NULL/PRI_KEY/… but drop what describes a number or a
        // binary value (UNSIGNED, ZEROFILL, BINARY, BLOB, NUM).
        flags: c.flags & !(0x20 | 0x40 | 0x80 | 0x10 | 0x8000),
        decimals: 0,
        ..c.clone()
    }
}

/// The first packet of a successful COM_STMT_PREPARE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    /// Statement id on the target.
    pub statement_id: u32,
    /// Result columns.
    pub columns: u16,
    /// Parameters.
    pub params: u16,
}

/// Read COM_STMT_PREPARE_OK.
pub fn parse_prepare_ok(payload: &[u8]) -> Result<PrepareOk, DecodeError> {
    let mut r = Reader::new(payload, "prepare response");
    if r.u8()? != 0 {
        return Err(DecodeError::Invalid("prepare response"));
    }
    let statement_id = r.u32()?;
    let columns = r.u16()?;
    let params = r.u16()?;
    Ok(PrepareOk {
        statement_id,
        columns,
        params,
    })
}

/// The statement id at the start of COM_STMT_EXECUTE/CLOSE/RESET/FETCH/
/// SEND_LONG_DATA.
pub fn statement_id(payload: &[u8]) -> Result<u32, DecodeError> {
    let mut r = Reader::new(payload, "statement command");
    r.u8()?;
    r.u32()
}

/// The column count that starts a result set.
pub fn column_count(payload: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader::new(payload, "column count");
    r.lenenc_int()?.ok_or(DecodeError::Invalid("column count"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_handshake() -> Handshake {
        Handshake {
            server_version: "5.5.5-10.11.0-MariaDB-gatehouse".into(),
            connection_id: 7,
            scramble: (1..=20).collect(),
            capabilities: cap::GATEWAY,
            charset: 45,
            status: status::AUTOCOMMIT,
            auth_plugin: "mysql_clear_password".into(),
        }
    }

    #[test]
    fn handshake_round_trips() {
        let h = sample_handshake();
        assert_eq!(parse_handshake(&handshake(&h)).unwrap(), h);
    }

    #[test]
    fn handshake_response_round_trips() {
        let r = HandshakeResponse {
            capabilities: cap::GATEWAY | cap::CONNECT_ATTRS,
            max_packet: 1 << 24,
            charset: 45,
            ssl_request: false,
            user: "alice".into(),
            auth: b"token.part.sig".to_vec(),
            database: Some("bank".into()),
            auth_plugin: Some("mysql_clear_password".into()),
            attributes: vec![("program_name".into(), "mysql".into())],
        };
        assert_eq!(
            parse_handshake_response(&handshake_response(&r)).unwrap(),
            HandshakeResponse {
                capabilities: r.capabilities | cap::CONNECT_WITH_DB,
                ..r.clone()
            }
        );
        let ssl = HandshakeResponse {
            ssl_request: true,
            capabilities: cap::GATEWAY,
            ..Default::default()
        };
        assert!(
            parse_handshake_response(&handshake_response(&ssl))
                .unwrap()
                .ssl_request
        );
    }

    #[test]
    fn ok_err_eof_round_trip() {
        let o = Ok {
            affected_rows: 3,
            last_insert_id: 300,
            status: status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS,
            warnings: 1,
            info: "Rows matched: 3".into(),
        };
        assert_eq!(parse_ok(&ok(&o)).unwrap(), o);
        let e = parse_err(&err(1142, "42000", "blocked")).unwrap();
        assert_eq!(
            (e.code, e.sqlstate.as_str(), e.message.as_str()),
            (1142, "42000", "blocked")
        );
        let eof_bytes = eof(0, status::MORE_RESULTS_EXISTS);
        assert!(is_eof(&eof_bytes));
        assert_eq!(eof_status(&eof_bytes), status::MORE_RESULTS_EXISTS);
    }

    #[test]
    fn column_round_trips_and_masks_as_string() {
        let c = Column {
            catalog: b"def".to_vec(),
            schema: b"bank".to_vec(),
            table: b"c".to_vec(),
            org_table: b"customers".to_vec(),
            name: b"ssn".to_vec(),
            org_name: b"ssn".to_vec(),
            charset: 63,
            length: 20,
            column_type: ty::LONGLONG,
            flags: 0x20 | 0x8000 | 1,
            decimals: 0,
            trailer: Vec::new(),
        };
        assert_eq!(parse_column(&column(&c)).unwrap(), c);
        let m = as_masked_string(&c);
        assert_eq!((m.column_type, m.charset, m.flags), (ty::VAR_STRING, 45, 1));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_handshake(&b);
            let _ = parse_handshake_response(&b);
            let _ = parse_ok(&b);
            let _ = parse_err(&b);
            let _ = parse_column(&b);
            let _ = parse_prepare_ok(&b);
            let _ = parse_auth_switch(&b);
            let _ = column_count(&b);
        }
    }
}
