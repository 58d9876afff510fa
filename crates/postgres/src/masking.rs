//! The mask stage on the PostgreSQL wire.
//!
//! A [`RowPlan`] says, per result column, what happens to its values: pass
//! through untouched, scan with the content detectors, or mask whole because
//! a column rule covers it. Rows are masked one DataRow at a time; a row in
//! which nothing changed is relayed as the original bytes.
//!
//! Wire-format rules (documented in the README):
//! - a column masked by a column rule is announced as `text` in
//!   RowDescription, so every client decodes the masked string, in text and
//!   binary format alike;
//! - a detector hit inside a text-like value is replaced in place;
//! - a detector hit inside a value of another type (a card number stored as
//!   `bigint`, say) cannot be rewritten without breaking the client's decoder,
//!   so that value becomes NULL.

use crate::codec::backend::{self, Field, Notice};
use gatehouse_core::mask::{Detection, MaskCounts, Masker, Strategy};
use gatehouse_core::policy::ColumnMask;

/// PostgreSQL type OIDs the masker reasons about.
mod oid {
    pub const BOOL: i32 = 16;
    pub const CHAR: i32 = 18;
    pub const NAME: i32 = 19;
    pub const INT8: i32 = 20;
    pub const INT2: i32 = 21;
    pub const INT4: i32 = 23;
    pub const TEXT: i32 = 25;
    pub const JSON: i32 = 114;
    pub const XML: i32 = 142;
    pub const UNKNOWN: i32 = 705;
    pub const BPCHAR: i32 = 1042;
    pub const VARCHAR: i32 = 1043;
    pub const JSONB: i32 = 3802;
}

/// Types whose text and binary forms are both the UTF-8 text itself.
fn text_like(type_oid: i32) -> bool {
    matches!(
        type_oid,
        oid::TEXT
            | oid::VARCHAR
            | oid::BPCHAR
            | oid::NAME
            | oid::CHAR
            | oid::UNKNOWN
            | oid::JSON
            | oid::XML
    )
}

/// Types whose values are numbers, dates, times, intervals, UUIDs, network
/// addresses, bytes, ranges of those, or arrays of them: detectors read them only
/// where a connection opts in (`detect_typed_values`); column rules mask
/// them otherwise. Types that may hold text (arrays of text, records,
/// user-defined types) are not listed and stay under the detectors.
fn typed_scalar(type_oid: i32) -> bool {
    matches!(
        type_oid,
        // bytea and bytea[]: their text form is hex, where a detector
        // only ever finds noise
        17 | 1001
        // int8, int2, int2vector, int4, regproc, oid, tid, xid, cid, oidvector
        | 20..=24 | 26..=30
        // point, lseg, path, box, polygon, line, cidr, float4, float8, circle
        | 600..=604 | 628 | 650 | 700 | 701 | 718
        // macaddr8, money, macaddr, inet
        | 774 | 790 | 829 | 869
        // arrays: int2vector[], int2[], int4[], regproc[], oid[], tid[], xid[], cid[], oidvector[]
        | 1005..=1013 | 1016 | 1017 | 1020..=1022 | 1027 | 1028 | 1040 | 1041
        // date, time, timestamp, timestamp[], date[], time[], timestamptz, timestamptz[]
        | 1082 | 1083 | 1114 | 1115 | 1182 | 1183 | 1184 | 1185
        // interval, interval[], numeric[], timetz, timetz[], bit, bit[], varbit, varbit[]
        | 1186 | 1187 | 1231 | 1266 | 1270 | 1560..=1563
        // numeric, reg* types, uuid, uuid[], pg_lsn, ranges and their arrays
        | 1700 | 2202..=2211 | 2950 | 2951 | 3220 | 3221 | 3904..=3913 | 3926 | 3927
        // regnamespace, regrole, regcollation and arrays, xid8
        | 4089 | 4090 | 4096 | 4097 | 4191 | 4192 | 5069
    )
}

/// What happens to one column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldAction {
    /// Relay untouched (booleans, dates, types no detector can match).
    Pass,
    /// Run content detectors; replace hits in place.
    DetectText {
        /// Skip this many leading bytes (jsonb's binary version byte).
        skip: usize,
    },
    /// Run content detectors on the value's text form; a hit makes it NULL.
    DetectOrNull {
        /// Binary integer width to decode, or 0 for text format.
        int_width: usize,
    },
    /// Mask the whole value by a column rule.
    Column {
        /// The rule's mask.
        mask: ColumnMask,
        /// Binary integer width to decode, or 0 when the value is text.
        int_width: usize,
        /// True when the value's form cannot be read as text (binary of a
        /// non-text, non-integer type): it is redacted outright.
        opaque: bool,
    },
}

/// The mask plan for one result set.
#[derive(Debug, Clone, Default)]
pub struct RowPlan {
    actions: Vec<FieldAction>,
    active: bool,
}

impl RowPlan {
    /// Build a plan from the columns and their formats.
    ///
    /// `formats[i]` is 0 for text, 1 for binary; `column_masks` come from
    /// policy; `detect` says which values the detectors read for this
    /// caller.
    pub fn new(
        fields: &[Field],
        formats: &[i16],
        column_masks: Vec<Option<ColumnMask>>,
        detect: Detection,
    ) -> RowPlan {
        let actions: Vec<FieldAction> = fields
            .iter()
            .zip(column_masks)
            .enumerate()
            .map(|(i, (f, mask))| {
                let binary = formats.get(i).copied().unwrap_or(0) == 1;
                let int_width = if binary { int_width(f.type_oid) } else { 0 };
                match mask {
                    Some(mask) => FieldAction::Column {
                        mask,
                        int_width,
                        opaque: binary
                            && !text_like(f.type_oid)
                            && f.type_oid != oid::JSONB
                            && int_width == 0,
                    },
                    None if !detect.any() || f.type_oid == oid::BOOL => FieldAction::Pass,
                    None if typed_scalar(f.type_oid) && !detect.typed() => FieldAction::Pass,
                    None if text_like(f.type_oid) => FieldAction::DetectText { skip: 0 },
                    None if f.type_oid == oid::JSONB => FieldAction::DetectText {
                        skip: usize::from(binary),
                    },
                    None if binary && int_width == 0 => FieldAction::Pass,
                    None => FieldAction::DetectOrNull { int_width },
                }
            })
            .collect();
        let active = actions.iter().any(|a| *a != FieldAction::Pass);
        RowPlan { actions, active }
    }

    /// A plan for rows whose columns are unknown: every value is scanned by
    /// the detectors, and if `mask_all` is set (the statement reads a table
    /// covered by a column rule and its columns could not be traced) every
    /// value is redacted.
    pub fn unknown(columns: usize, mask_all: Option<ColumnMask>, detect: bool) -> RowPlan {
        let action = match mask_all {
            Some(mask) => FieldAction::Column {
                mask,
                int_width: 0,
                opaque: true,
            },
            None if detect => FieldAction::DetectOrNull { int_width: 0 },
            None => FieldAction::Pass,
        };
        let active = action != FieldAction::Pass;
        RowPlan {
            actions: vec![action; columns],
            active,
        }
    }

    /// Whether any column needs work; a plan that does nothing lets rows
    /// through without parsing them.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Number of columns planned.
    pub fn width(&self) -> usize {
        self.actions.len()
    }

    /// Rewrite a RowDescription so masked columns are announced as text.
    pub fn rewrite_description(&self, fields: &[Field]) -> Option<Vec<u8>> {
        if !self
            .actions
            .iter()
            .any(|a| matches!(a, FieldAction::Column { .. }))
        {
            return None;
        }
        let rewritten: Vec<Field> = fields
            .iter()
            .zip(&self.actions)
            .map(|(f, a)| match a {
                FieldAction::Column { .. } => Field {
                    type_oid: oid::TEXT,
                    type_len: -1,
                    type_mod: -1,
                    ..f.clone()
                },
                _ => f.clone(),
            })
            .collect();
        Some(backend::row_description(&rewritten))
    }

    /// Mask one DataRow body; `None` when nothing changed (relay the original).
    pub fn mask_row(
        &self,
        masker: &Masker,
        body: &[u8],
        counts: &mut MaskCounts,
    ) -> Result<Option<Vec<u8>>, crate::codec::DecodeError> {
        if !self.active {
            return Ok(None);
        }
        let values = backend::parse_data_row(body)?;
        let mut out: Vec<Option<std::borrow::Cow<'_, [u8]>>> = Vec::with_capacity(values.len());
        let mut changed = false;
        for (i, value) in values.iter().enumerate() {
            let action = self.actions.get(i).unwrap_or(&FieldAction::Pass);
            let masked = match value {
                None => None,
                Some(v) => mask_value(masker, action, v, counts),
            };
            match masked {
                Some(new) => {
                    changed = true;
                    out.push(new.map(std::borrow::Cow::Owned));
                }
                None => out.push(value.map(std::borrow::Cow::Borrowed)),
            }
        }
        if !changed {
            return Ok(None);
        }
        Ok(Some(backend::data_row(out.iter().map(|v| v.as_deref()))))
    }

    /// Mask one text- or CSV-format COPY row (one CopyData payload).
    pub fn mask_copy_line(
        &self,
        masker: &Masker,
        line: &[u8],
        csv: bool,
        counts: &mut MaskCounts,
    ) -> Option<Vec<u8>> {
        if !self.active {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        let (body, newline) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (text, ""),
        };
        let fields = if csv {
            split_csv(body)
        } else {
            body.split('\t').map(|s| s.to_string()).collect()
        };
        let mut changed = false;
        let mut out = Vec::with_capacity(fields.len());
        for (i, field) in fields.into_iter().enumerate() {
            let is_null = if csv {
                field.is_empty()
            } else {
                field == "\\N"
            };
            let action = self
                .actions
                .get(i)
                .unwrap_or(&FieldAction::DetectText { skip: 0 });
            let new = if is_null {
                None
            } else {
                match action {
                    FieldAction::Pass => None,
                    FieldAction::Column { mask, .. } => Some(Some(
                        masker
                            .mask_value(&field, &mask.strategy, mask.entity, counts)
                            .into_bytes(),
                    )),
                    _ => masker
                        .mask_detected(&field, counts)
                        .map(|s| Some(s.into_bytes())),
                }
            };
            match new {
                Some(Some(bytes)) => {
                    changed = true;
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                }
                _ => out.push(field),
            }
        }
        if !changed {
            return None;
        }
        let joined = if csv {
            out.iter()
                .map(|f| quote_csv(f))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            out.join("\t")
        };
        Some(format!("{joined}{newline}").into_bytes())
    }
}

fn int_width(type_oid: i32) -> usize {
    match type_oid {
        oid::INT2 => 2,
        oid::INT4 => 4,
        oid::INT8 => 8,
        _ => 0,
    }
}

/// Read a value as text: UTF-8 as is, or a binary integer as its decimal form.
fn as_text(value: &[u8], int_width: usize) -> Option<String> {
    match (int_width, value.len()) {
        (0, _) => std::str::from_utf8(value).ok().map(str::to_string),
        (2, 2) => Some(i16::from_be_bytes([value[0], value[1]]).to_string()),
        (4, 4) => Some(i32::from_be_bytes([value[0], value[1], value[2], value[3]]).to_string()),
        (8, 8) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(value);
            Some(i64::from_be_bytes(b).to_string())
        }
        _ => None,
    }
}

/// `None`: unchanged. `Some(None)`: becomes NULL. `Some(Some(bytes))`: new value.
#[allow(clippy::option_option)]
fn mask_value(
    masker: &Masker,
    action: &FieldAction,
    value: &[u8],
    counts: &mut MaskCounts,
) -> Option<Option<Vec<u8>>> {
    match action {
        FieldAction::Pass => None,
        FieldAction::DetectText { skip } => {
            let (head, rest) = value.split_at((*skip).min(value.len()));
            if !gatehouse_core::mask::may_contain_pii(rest) {
                return None;
            }
            let masked = masker.mask_detected_bytes(rest, counts)?;
            let mut out = head.to_vec();
            out.extend_from_slice(&masked);
            Some(Some(out))
        }
        FieldAction::DetectOrNull { int_width } => {
            // Text-format values are their own text: run the cheap prefilter
            // on the bytes before allocating (the common case on every row).
            if *int_width == 0 && !gatehouse_core::mask::may_contain_pii(value) {
                return None;
            }
            let text = as_text(value, *int_width)?;
            if !gatehouse_core::mask::may_contain_pii(text.as_bytes()) {
                return None;
            }
            masker.mask_detected(&text, counts).map(|_| None)
        }
        FieldAction::Column {
            mask,
            int_width,
            opaque,
        } => {
            let text = if *opaque {
                None
            } else {
                as_text(value, *int_width)
            };
            let masked = match text {
                Some(t) => masker.mask_value(&t, &mask.strategy, mask.entity, counts),
                None => masker.mask_value("", &Strategy::Redact, mask.entity, counts),
            };
            Some(Some(masked.into_bytes()))
        }
    }
}

/// Mask the human-readable fields of an ErrorResponse/NoticeResponse
/// (a unique-violation detail can echo an SSN). `None` when unchanged.
pub fn mask_notice(
    masker: &Masker,
    tag: u8,
    body: &[u8],
    counts: &mut MaskCounts,
) -> Option<Vec<u8>> {
    if !gatehouse_core::mask::may_contain_pii(body) {
        return None;
    }
    let mut notice: Notice = backend::parse_notice(body).ok()?;
    let mut changed = false;
    for (code, text) in notice.fields.iter_mut() {
        if matches!(*code, b'M' | b'D' | b'H' | b'W' | b'q' | b'P') {
            if let Some(masked) = masker.mask_detected(text, counts) {
                *text = masked;
                changed = true;
            }
        }
    }
    changed.then(|| notice.encode(tag))
}

/// Split one CSV line (PostgreSQL's CSV: `"` quoting, `""` escapes).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

fn quote_csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_split_and_quote_round_trip() {
        let line = r#"1,"Doe, Jane","say ""hi""",,x"#;
        let f = split_csv(line);
        assert_eq!(f, vec!["1", "Doe, Jane", "say \"hi\"", "", "x"]);
        let back: Vec<String> = f.iter().map(|s| quote_csv(s)).collect();
        assert_eq!(back.join(","), line);
    }

    #[test]
    fn binary_integers_read_as_text() {
        assert_eq!(as_text(&7i32.to_be_bytes(), 4).as_deref(), Some("7"));
        assert_eq!(
            as_text(&4111111111111111i64.to_be_bytes(), 8).as_deref(),
            Some("4111111111111111")
        );
        assert_eq!(as_text(&[1, 2, 3], 4), None);
    }
}
