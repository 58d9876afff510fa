//! What a PostgreSQL target sends back through the gateway: tagged backend
//! messages, decoded and (for rows, notices and COPY data) masked.
//!
//! Input: byte 0 configures masking (see `gatehouse_fuzz::{masker,
//! detection, column_masks}`); the rest is the target's byte stream.
//! Entry points: `codec::frame::take_tagged`, every `codec::backend::parse_*`,
//! `masking::RowPlan::{new, unknown, mask_row, mask_copy_line,
//! rewrite_description}`, `masking::mask_notice`, and
//! `syntax::SessionSyntax::from_login` (ParameterStatus at login).
//! Invariants: framing keeps every byte; re-encoded messages decode to the
//! same thing; a masked DataRow or notice is still a well-formed message.
#![no_main]

use bytes::BytesMut;
use gatehouse_core::mask::{MaskCounts, Masker};
use gatehouse_postgres::codec::backend::{self, Field};
use gatehouse_postgres::codec::frame;
use gatehouse_postgres::masking::{mask_notice, RowPlan};
use gatehouse_postgres::syntax::SessionSyntax;
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let masker = gatehouse_fuzz::masker(config);
    let detect = gatehouse_fuzz::detection(config);
    let mut counts = MaskCounts::default();

    let mut buf = BytesMut::from(stream);
    let mut consumed = 0usize;
    let mut plan = RowPlan::unknown(0, None, false);
    let mut parameter_status = Vec::new();
    loop {
        let f = match frame::take_tagged(&mut buf, MAX_MESSAGE) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        consumed += f.raw.len();
        let body = &f.body[..];
        every_decoder(body);
        match f.tag {
            b'T' => {
                if let Ok(fields) = backend::parse_row_description(body) {
                    let formats: Vec<i16> = fields.iter().map(|f| f.format).collect();
                    let masks = gatehouse_fuzz::column_masks(config, fields.len());
                    plan = RowPlan::new(&fields, &formats, masks, detect);
                    assert_eq!(plan.width(), fields.len());
                    if let Some(wire) = plan.rewrite_description(&fields) {
                        let back = backend::parse_row_description(&wire[5..])
                            .expect("rewritten RowDescription decodes");
                        assert_eq!(back.len(), fields.len());
                    }
                } else {
                    plan = RowPlan::unknown(
                        usize::from(config >> 4),
                        (config & 0x40 != 0)
                            .then(|| gatehouse_core::policy::ColumnMask::redact_all("fuzz")),
                        detect.any(),
                    );
                }
            }
            b'D' => data_row(&plan, &masker, body, &mut counts),
            b'd' => {
                let _ = plan.mask_copy_line(&masker, body, config & 0x80 != 0, &mut counts);
            }
            b'E' | b'N' => {
                if let Some(wire) = mask_notice(&masker, f.tag, body, &mut counts) {
                    assert_eq!(wire[0], f.tag);
                    backend::parse_notice(&wire[5..]).expect("masked notice decodes");
                }
            }
            b'S' => parameter_status.push(f.raw.to_vec()),
            _ => {}
        }
    }
    assert_eq!(
        consumed + buf.len(),
        stream.len(),
        "framing lost or invented bytes"
    );
    let _ = SessionSyntax::from_login(&parameter_status);

    // Short inputs reach the decoders without forming a frame.
    every_decoder(stream);
    let plan = RowPlan::unknown(4, None, true);
    data_row(&plan, &masker, stream, &mut counts);
    let _ = mask_notice(&masker, b'E', stream, &mut counts);
});

fn data_row(plan: &RowPlan, masker: &Masker, body: &[u8], counts: &mut MaskCounts) {
    let Ok(values) = backend::parse_data_row(body) else {
        return;
    };
    match plan.mask_row(masker, body, counts) {
        Ok(Some(wire)) => {
            assert_eq!(wire[0], b'D');
            let masked = backend::parse_data_row(&wire[5..]).expect("masked DataRow decodes");
            assert_eq!(
                masked.len(),
                values.len(),
                "masking changed the column count"
            );
        }
        Ok(None) => {}
        Err(e) => panic!("mask_row failed on a DataRow that parses: {e}"),
    }
}

fn every_decoder(body: &[u8]) {
    let _ = backend::parse_authentication(body);
    let _ = backend::parse_backend_key(body);
    let _ = backend::parse_ready_for_query(body);
    let _ = backend::parse_parameter_description(body);
    if let Ok(tag) = backend::parse_command_complete(body) {
        let _ = backend::rows_from_tag(tag);
    }
    if let Ok(fields) = backend::parse_row_description(body) {
        let wire = backend::row_description(&fields);
        let back: Vec<Field> =
            backend::parse_row_description(&wire[5..]).expect("re-encoded RowDescription decodes");
        assert_eq!(back, fields);
    }
    if let Ok(values) = backend::parse_data_row(body) {
        let wire = backend::data_row(values.iter().copied());
        assert_eq!(backend::parse_data_row(&wire[5..]).as_ref(), Ok(&values));
    }
    if let Ok(notice) = backend::parse_notice(body) {
        let _ = notice.get(b'M');
        let wire = notice.encode(b'E');
        assert_eq!(backend::parse_notice(&wire[5..]).as_ref(), Ok(&notice));
    }
    if let Ok((k, v)) = backend::parse_parameter_status(body) {
        let wire = backend::parameter_status(k, v);
        assert_eq!(backend::parse_parameter_status(&wire[5..]), Ok((k, v)));
    }
    if let Ok(n) = backend::parse_notification(body) {
        let wire = backend::notification(&n);
        assert_eq!(backend::parse_notification(&wire[5..]).as_ref(), Ok(&n));
    }
    let _ = backend::parse_copy_response(body);
}
