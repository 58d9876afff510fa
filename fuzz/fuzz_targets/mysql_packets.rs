//! MySQL/MariaDB packets in both directions: the client's handshake
//! response and COM_* commands (COM_STMT_EXECUTE parameters included), and
//! the target's handshake, OK/ERR/EOF, column definitions and text/binary
//! rows, which the gateway masks.
//!
//! Input: byte 0 configures masking (see `gatehouse_fuzz::{masker,
//! detection, column_masks}`); the rest is a stream of packets.
//! Entry points: `codec::frame::take`, every `codec::packets::parse_*`,
//! `codec::rows::{parse_text_row, parse_binary_row, binary_value_len,
//! binary_value_text}`, `codec::Reader`, `parse_kill`,
//! `masking::{RowPlan, mask_err}`, and `MySqlServer::from_greeting` on the
//! server version of a handshake (as the session does).
//!
//! COM_STMT_EXECUTE's parameter reader is reached through its hidden
//! re-export, `gatehouse_mysql::show_params`.
#![no_main]

use bytes::BytesMut;
use gatehouse_core::classify::syntax::{mysql_executable_comments, MySqlServer};
use gatehouse_core::mask::{MaskCounts, Masker};
use gatehouse_mysql::codec::packets::{self, com, Column};
use gatehouse_mysql::codec::{frame, rows};
use gatehouse_mysql::masking::{mask_err, RowFormat, RowPlan};
use libfuzzer_sys::fuzz_target;

const MAX_PACKET: usize = 1 << 20;
/// Columns kept for a result set; enough to reach every bitmap byte shape.
const MAX_COLUMNS: usize = 40;

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let masker = gatehouse_fuzz::masker(config);
    let mut counts = MaskCounts::default();

    let mut buf = BytesMut::from(stream);
    let mut consumed = 0usize;
    let mut columns: Vec<Column> = Vec::new();
    loop {
        let p = match frame::take(&mut buf, MAX_PACKET) {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => break,
        };
        consumed += p.payload.len() + 4 * (p.payload.len() / frame::MAX_CHUNK + 1);
        let payload = &p.payload[..];
        every_decoder(payload);
        command(payload);
        if let Ok(c) = packets::parse_column(payload) {
            let wire = packets::column(&c);
            assert_eq!(packets::parse_column(&wire).as_ref(), Ok(&c));
            if columns.len() < MAX_COLUMNS {
                columns.push(c);
            }
        } else if !columns.is_empty() {
            row(config, &masker, &columns, payload, &mut counts);
        }
        if let Some(wire) = mask_err(&masker, payload, &mut counts) {
            packets::parse_err(&wire).expect("masked ERR packet decodes");
        }
    }
    assert_eq!(
        consumed + buf.len(),
        stream.len(),
        "framing lost or invented bytes"
    );

    // Short inputs reach the decoders without forming a packet.
    every_decoder(stream);
    command(stream);
});

fn every_decoder(payload: &[u8]) {
    if let Ok(h) = packets::parse_handshake(payload) {
        // The session reads the target's version from its greeting, to know
        // which executable comments it runs.
        let server = MySqlServer::from_greeting(&h.server_version);
        let _ = mysql_executable_comments("SELECT /*!50700 1, */ /*M!100000 2, */ 3", &server);
        let wire = packets::handshake(&h);
        let _ = packets::parse_handshake(&wire);
    }
    let _ = packets::parse_handshake_response(payload);
    let _ = packets::parse_auth_switch(payload);
    if let Ok(ok) = packets::parse_ok(payload) {
        let wire = packets::ok(&ok);
        assert_eq!(packets::parse_ok(&wire).as_ref(), Ok(&ok));
    }
    let _ = packets::parse_err(payload);
    if packets::is_eof(payload) {
        let _ = packets::eof_status(payload);
    }
    let _ = packets::parse_prepare_ok(payload);
    let _ = packets::statement_id(payload);
    if let Ok(n) = packets::column_count(payload) {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(MAX_COLUMNS);
        if let Ok(values) = rows::parse_text_row(payload, n) {
            let wire = rows::text_row(values.iter().copied());
            assert_eq!(rows::parse_text_row(&wire, n).as_ref(), Ok(&values));
        }
    }
}

/// A client command, dispatched on its first byte as the proxy does.
fn command(payload: &[u8]) {
    let Some((&cmd, rest)) = payload.split_first() else {
        return;
    };
    match cmd {
        com::QUERY | com::STMT_PREPARE | com::INIT_DB => {
            let sql = String::from_utf8_lossy(rest);
            let _ = gatehouse_mysql::parse_kill(&sql);
        }
        com::STMT_EXECUTE => {
            let count = payload.get(1).copied().unwrap_or(0) as u16 % 40;
            let mut types = Vec::new();
            let _ = gatehouse_mysql::show_params(payload, count, &mut types);
            // A later execution reuses the types the first one sent.
            let _ = gatehouse_mysql::show_params(payload, count, &mut types);
        }
        com::STMT_CLOSE | com::STMT_RESET | com::STMT_FETCH | com::STMT_SEND_LONG_DATA => {
            let _ = packets::statement_id(payload);
        }
        _ => {}
    }
}

/// A result row under both protocols, masked with a plan built from the
/// columns seen so far. A masked row must decode with the column
/// definitions the gateway sent in place of the target's.
fn row(config: u8, masker: &Masker, columns: &[Column], payload: &[u8], counts: &mut MaskCounts) {
    let detect = gatehouse_fuzz::detection(config);
    let masks = gatehouse_fuzz::column_masks(config, columns.len());
    let text = RowPlan::new(columns.to_vec(), masks, detect, RowFormat::Text);
    let binary = text.with_format(RowFormat::Binary);
    assert_eq!(text.width(), columns.len());
    let sent: Vec<Column> = (0..columns.len())
        .map(|i| match text.rewrite_column(i) {
            Some(wire) => packets::parse_column(&wire).expect("rewritten column decodes"),
            None => columns[i].clone(),
        })
        .collect();
    let _ = text.column_names();

    if rows::parse_text_row(payload, columns.len()).is_ok() {
        match text.mask_row(masker, payload, counts) {
            Ok(Some(wire)) => {
                rows::parse_text_row(&wire, columns.len()).expect("masked text row decodes");
            }
            Ok(None) => {}
            Err(e) => panic!("mask_row failed on a text row that parses: {e}"),
        }
        let _ = text.sample(payload);
    }
    if let Ok(values) = rows::parse_binary_row(payload, columns) {
        for (v, c) in values.iter().zip(columns) {
            if let Some(w) = v {
                let _ = rows::binary_value_text(c, w);
            }
        }
        match binary.mask_row(masker, payload, counts) {
            Ok(Some(wire)) => {
                let masked = rows::parse_binary_row(&wire, &sent)
                    .expect("masked binary row decodes with the columns the gateway sent");
                assert_eq!(masked.len(), columns.len());
                let _ = binary.sample(&wire);
            }
            Ok(None) => {
                let _ = binary.sample(payload);
            }
            Err(e) => panic!("mask_row failed on a binary row that parses: {e}"),
        }
    }
}
