//! Result rows in the text protocol (COM_QUERY: every value a
//! length-encoded string, 0xfb for NULL) and the binary protocol
//! (COM_STMT_EXECUTE: a 0x00 header, a NULL bitmap offset by two bits,
//! then each non-NULL value in its type's binary form).

use super::packets::{ty, Column, UNSIGNED_FLAG};
use super::{put_lenenc_bytes, DecodeError, Reader};

/// Read a text-protocol row of `columns` values.
pub fn parse_text_row(payload: &[u8], columns: usize) -> Result<Vec<Option<&[u8]>>, DecodeError> {
    let mut r = Reader::new(payload, "text row");
    let mut values = Vec::with_capacity(columns);
    for _ in 0..columns {
        values.push(r.lenenc_bytes()?);
    }
    if !r.is_empty() {
        return Err(DecodeError::Invalid("text row (trailing bytes)"));
    }
    Ok(values)
}

/// Write a text-protocol row.
pub fn text_row<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for v in values {
        match v {
            None => out.push(0xfb),
            Some(b) => put_lenenc_bytes(&mut out, b),
        }
    }
    out
}

/// Bytes of the NULL bitmap of a binary row of `columns` values.
fn bitmap_len(columns: usize) -> usize {
    (columns + 7 + 2) / 8
}

/// Wire size of one binary value of type `t` at the start of `rest`.
pub fn binary_value_len(t: u8, rest: &[u8]) -> Result<usize, DecodeError> {
    Ok(match t {
        ty::NULL => 0,
        ty::TINY => 1,
        ty::SHORT | ty::YEAR => 2,
        ty::LONG | ty::INT24 | ty::FLOAT => 4,
        ty::LONGLONG | ty::DOUBLE => 8,
        ty::DATE
        | ty::DATETIME
        | ty::TIMESTAMP
        | ty::TIME
        | ty::NEWDATE
        | ty::TIMESTAMP2
        | ty::DATETIME2
        | ty::TIME2 => 1 + *rest.first().ok_or(DecodeError::Truncated("binary row"))? as usize,
        _ => {
            // Strings, decimals, blobs, enums, sets, bits, JSON, geometry.
            let mut r = Reader::new(rest, "binary row");
            let n = r
                .lenenc_int()?
                .ok_or(DecodeError::Invalid("binary row value"))?;
            // A length near u64::MAX would wrap: refused, never read short.
            usize::try_from(n)
                .ok()
                .and_then(|n| r.pos().checked_add(n))
                .ok_or(DecodeError::Invalid("binary row value length"))?
        }
    })
}

/// Read a binary-protocol row: each value's exact wire bytes (length
/// prefix included), `None` where the bitmap says NULL.
pub fn parse_binary_row<'a>(
    payload: &'a [u8],
    columns: &[Column],
) -> Result<Vec<Option<&'a [u8]>>, DecodeError> {
    let mut r = Reader::new(payload, "binary row");
    if r.u8()? != 0 {
        return Err(DecodeError::Invalid("binary row header"));
    }
    let bitmap = r.bytes(bitmap_len(columns.len()))?;
    let mut values = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            values.push(None);
            continue;
        }
        let n = binary_value_len(c.column_type, r.rest())?;
        values.push(Some(r.bytes(n)?));
    }
    if !r.is_empty() {
        return Err(DecodeError::Invalid("binary row (trailing bytes)"));
    }
    Ok(values)
}

/// Write a binary-protocol row from wire-form values.
pub fn binary_row<'a>(values: &[Option<std::borrow::Cow<'a, [u8]>>]) -> Vec<u8> {
    let mut out = vec![0u8; 1 + bitmap_len(values.len())];
    for (i, v) in values.iter().enumerate() {
        match v {
            None => {
                let bit = i + 2;
                out[1 + bit / 8] |= 1 << (bit % 8);
            }
            Some(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// A string value in binary-protocol wire form.
pub fn binary_string(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 3);
    put_lenenc_bytes(&mut out, text);
    out
}

/// Whether values of this column are text (strings, JSON, enums), so
/// detector hits can be replaced inside them.
pub fn is_text_type(t: u8) -> bool {
    matches!(
        t,
        ty::VARCHAR
            | ty::VAR_STRING
            | ty::STRING
            | ty::TINY_BLOB
            | ty::MEDIUM_BLOB
            | ty::LONG_BLOB
            | ty::BLOB
            | ty::ENUM
            | ty::SET
            | ty::JSON
    )
}

/// Whether the binary form of this column is a length-encoded string whose
/// bytes are its text (decimals travel as text in both protocols).
fn binary_is_lenenc_text(t: u8) -> bool {
    is_text_type(t) || matches!(t, ty::DECIMAL | ty::NEWDECIMAL)
}

/// A binary-protocol value as text, where that is exact: strings and
/// decimals as their bytes, integers in decimal. `None` for dates, times,
/// floats and bit strings.
pub fn binary_value_text(c: &Column, wire: &[u8]) -> Option<String> {
    let unsigned = c.flags & UNSIGNED_FLAG != 0;
    let t = c.column_type;
    if binary_is_lenenc_text(t) {
        let mut r = Reader::new(wire, "binary value");
        let b = r.lenenc_bytes().ok()??;
        return String::from_utf8(b.to_vec()).ok();
    }
    let int = match (t, wire.len()) {
        (ty::TINY, 1) if unsigned => wire[0] as i128,
        (ty::TINY, 1) => wire[0] as i8 as i128,
        (ty::SHORT | ty::YEAR, 2) => {
            let v = u16::from_le_bytes([wire[0], wire[1]]);
            if unsigned {
                v as i128
            } else {
                v as i16 as i128
            }
        }
        (ty::LONG | ty::INT24, 4) => {
            let v = u32::from_le_bytes([wire[0], wire[1], wire[2], wire[3]]);
            if unsigned {
                v as i128
            } else {
                v as i32 as i128
            }
        }
        (ty::LONGLONG, 8) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(wire);
            let v = u64::from_le_bytes(a);
            if unsigned {
                v as i128
            } else {
                v as i64 as i128
            }
        }
        _ => return None,
    };
    Some(int.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn col(t: u8, flags: u16) -> Column {
        Column {
            column_type: t,
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn text_row_round_trips() {
        let row = text_row([Some(&b"1"[..]), None, Some(&b"123-45-6789"[..])]);
        let values = parse_text_row(&row, 3).unwrap();
        assert_eq!(
            values,
            vec![Some(&b"1"[..]), None, Some(&b"123-45-6789"[..])]
        );
        assert!(parse_text_row(&row, 2).is_err());
        // Found by fuzzing (fuzz/artifacts/mysql_packets): a string value
        // whose length prefix is u64::MAX overflowed the length sum.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(binary_value_len(ty::VAR_STRING, &huge).is_err());
    }

    #[test]
    fn binary_row_reads_every_width() {
        let cols = vec![
            col(ty::LONGLONG, 0),
            col(ty::VAR_STRING, 0),
            col(ty::DATE, 0),
            col(ty::TINY, UNSIGNED_FLAG),
            col(ty::LONG, 0),
            col(ty::NEWDECIMAL, 0),
        ];
        let values: Vec<Option<Cow<[u8]>>> = vec![
            Some(Cow::Owned(4111111111111111i64.to_le_bytes().to_vec())),
            Some(Cow::Owned(binary_string(b"jane@example.com"))),
            Some(Cow::Owned(vec![4, 0xe8, 0x07, 1, 2])),
            None,
            Some(Cow::Owned((-5i32).to_le_bytes().to_vec())),
            Some(Cow::Owned(binary_string(b"12.50"))),
        ];
        let row = binary_row(&values);
        let parsed = parse_binary_row(&row, &cols).unwrap();
        assert_eq!(parsed.len(), 6);
        assert!(parsed[3].is_none());
        assert_eq!(
            binary_value_text(&cols[0], parsed[0].unwrap()).as_deref(),
            Some("4111111111111111")
        );
        assert_eq!(
            binary_value_text(&cols[1], parsed[1].unwrap()).as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(binary_value_text(&cols[2], parsed[2].unwrap()), None);
        assert_eq!(
            binary_value_text(&cols[4], parsed[4].unwrap()).as_deref(),
            Some("-5")
        );
        assert_eq!(
            binary_value_text(&cols[5], parsed[5].unwrap()).as_deref(),
            Some("12.50")
        );
        let again: Vec<Option<Cow<[u8]>>> = parsed.iter().map(|v| v.map(Cow::Borrowed)).collect();
        assert_eq!(binary_row(&again), row);
    }

    proptest! {
        #[test]
        fn row_parsers_never_panic(
            b in proptest::collection::vec(any::<u8>(), 0..120),
            types in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            let cols: Vec<Column> = types.iter().map(|t| col(*t, 0)).collect();
            let _ = parse_text_row(&b, cols.len());
            if let Ok(values) = parse_binary_row(&b, &cols) {
                for (c, v) in cols.iter().zip(values) {
                    if let Some(v) = v { let _ = binary_value_text(c, v); }
                }
            }
        }

        #[test]
        fn text_rows_round_trip(values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let row = text_row(values.iter().map(|v| v.as_deref()));
            let parsed = parse_text_row(&row, values.len()).unwrap();
            let parsed: Vec<Option<Vec<u8>>> = parsed.into_iter().map(|v| v.map(|b| b.to_vec())).collect();
            prop_assert_eq!(parsed, values);
        }
    }
}
