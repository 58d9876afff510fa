//! The mask stage on the MySQL wire.
//!
//! A [`RowPlan`] says, per result column, what happens to its values: pass
//! through, scan with the content detectors, or mask whole because a column
//! rule covers it. Rows are masked one packet at a time; a row in which
//! nothing changed is relayed as the original bytes.
//!
//! Wire-format rules (documented in the README):
//! - a column masked by a column rule is announced as a `utf8mb4`
//!   VAR_STRING in its column definition, so text- and binary-protocol
//!   clients alike decode the masked text (a masked `BIGINT` or `DECIMAL`
//!   arrives as a string such as `***********1111`);
//! - a detector hit inside a string value is replaced in place;
//! - a detector hit inside a number (a card number stored as `BIGINT`)
//!   cannot be rewritten without breaking the client's decoder, so that
//!   value becomes NULL.

use crate::codec::packets::{self, ty, Column};
use crate::codec::rows;
use crate::codec::DecodeError;
use gatehouse_core::mask::{Detection, MaskCounts, Masker, Strategy};
use gatehouse_core::policy::ColumnMask;
use std::borrow::Cow;

/// What happens to one column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldAction {
    /// Relay untouched (dates, floats, bits: no detector matches them).
    Pass,
    /// Run content detectors; replace hits in place.
    DetectText,
    /// Run content detectors on the value's text; a hit makes it NULL.
    DetectOrNull,
    /// Mask the whole value by a column rule.
    Column(ColumnMask),
}

/// Which row format a result set uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// COM_QUERY: every value a length-encoded string.
    Text,
    /// COM_STMT_EXECUTE/FETCH: typed binary values.
    Binary,
}

/// The mask plan for one result set.
#[derive(Debug, Clone)]
pub struct RowPlan {
    columns: Vec<Column>,
    actions: Vec<FieldAction>,
    format: RowFormat,
    active: bool,
}

fn number_type(t: u8) -> bool {
    matches!(
        t,
        ty::TINY | ty::SHORT | ty::LONG | ty::INT24 | ty::LONGLONG | ty::DECIMAL | ty::NEWDECIMAL
    )
}

impl RowPlan {
    /// Build a plan from the target's column definitions, the column
    /// rules' masks (one per column) and whether detectors apply.
    pub fn new(
        columns: Vec<Column>,
        masks: Vec<Option<ColumnMask>>,
        detect: Detection,
        format: RowFormat,
    ) -> RowPlan {
        let mut masks = masks.into_iter();
        let actions: Vec<FieldAction> = columns
            .iter()
            .map(|c| match masks.next().flatten() {
                Some(mask) => FieldAction::Column(mask),
                None if !detect.any() => FieldAction::Pass,
                None if rows::is_text_type(c.column_type) => FieldAction::DetectText,
                // Numbers are masked by column rules unless the connection
                // opts in: an amount or an epoch second is not PII.
                None if number_type(c.column_type) && detect.typed() => FieldAction::DetectOrNull,
                None => FieldAction::Pass,
            })
            .collect();
        let active = actions.iter().any(|a| *a != FieldAction::Pass);
        RowPlan {
            columns,
            actions,
            format,
            active,
        }
    }

    /// Whether any column needs work.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The same plan for another row format (a prepared statement's
    /// columns are described at PREPARE, its rows are binary).
    pub fn with_format(&self, format: RowFormat) -> RowPlan {
        RowPlan {
            format,
            ..self.clone()
        }
    }

    /// The column definition to send for column `i`: masked columns are
    /// announced as strings; `None` keeps the original packet.
    pub fn rewrite_column(&self, i: usize) -> Option<Vec<u8>> {
        match (self.actions.get(i), self.columns.get(i)) {
            (Some(FieldAction::Column(_)), Some(c)) => {
                Some(packets::column(&packets::as_masked_string(c)))
            }
            _ => None,
        }
    }

    /// Mask one row packet; `None` when nothing changed (relay the original).
    pub fn mask_row(
        &self,
        masker: &Masker,
        payload: &[u8],
        counts: &mut MaskCounts,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        if !self.active {
            return Ok(None);
        }
        match self.format {
            RowFormat::Text => self.mask_text_row(masker, payload, counts),
            RowFormat::Binary => self.mask_binary_row(masker, payload, counts),
        }
    }

    fn mask_text_row(
        &self,
        masker: &Masker,
        payload: &[u8],
        counts: &mut MaskCounts,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        let values = rows::parse_text_row(payload, self.columns.len())?;
        let mut out: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(values.len());
        let mut changed = false;
        for (value, action) in values.iter().zip(&self.actions) {
            let new = match value {
                None => None,
                Some(v) => mask_text_value(masker, action, v, counts),
            };
            match new {
                Some(n) => {
                    changed = true;
                    out.push(n.map(Cow::Owned));
                }
                None => out.push(value.map(Cow::Borrowed)),
            }
        }
        Ok(changed.then(|| rows::text_row(out.iter().map(|v| v.as_deref()))))
    }

    fn mask_binary_row(
        &self,
        masker: &Masker,
        payload: &[u8],
        counts: &mut MaskCounts,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        let values = rows::parse_binary_row(payload, &self.columns)?;
        let mut out: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(values.len());
        let mut changed = false;
        for ((value, action), col) in values.iter().zip(&self.actions).zip(&self.columns) {
            let new = match value {
                None => None,
                Some(wire) => mask_binary_value(masker, action, col, wire, counts),
            };
            match new {
                Some(n) => {
                    changed = true;
                    out.push(n.map(Cow::Owned));
                }
                None => out.push(value.map(Cow::Borrowed)),
            }
        }
        Ok(changed.then(|| rows::binary_row(&out)))
    }

    /// The columns' names, as the target announced them (for the audit
    /// sample's header).
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| String::from_utf8_lossy(&c.name).into_owned())
            .collect()
    }

    /// A row as text for the audit sample (already masked).
    pub fn sample(&self, payload: &[u8]) -> Option<serde_json::Value> {
        let shown: Vec<Option<String>> = match self.format {
            RowFormat::Text => rows::parse_text_row(payload, self.columns.len())
                .ok()?
                .into_iter()
                .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect(),
            RowFormat::Binary => {
                // A masked row's masked columns are strings now.
                let cols: Vec<Column> = self
                    .columns
                    .iter()
                    .zip(&self.actions)
                    .map(|(c, a)| match a {
                        FieldAction::Column(_) => packets::as_masked_string(c),
                        _ => c.clone(),
                    })
                    .collect();
                rows::parse_binary_row(payload, &cols)
                    .ok()?
                    .into_iter()
                    .zip(&cols)
                    .map(|(v, c)| {
                        v.map(|w| {
                            rows::binary_value_text(c, w)
                                .unwrap_or_else(|| format!("0x{}", hex::encode(w)))
                        })
                    })
                    .collect()
            }
        };
        Some(serde_json::json!(shown))
    }
}

/// `None`: unchanged. `Some(None)`: becomes NULL. `Some(Some(bytes))`: new text.
#[allow(clippy::option_option)]
fn mask_text_value(
    masker: &Masker,
    action: &FieldAction,
    value: &[u8],
    counts: &mut MaskCounts,
) -> Option<Option<Vec<u8>>> {
    match action {
        FieldAction::Pass => None,
        FieldAction::DetectText => {
            if !gatehouse_core::mask::may_contain_pii(value) {
                return None;
            }
            masker.mask_detected_bytes(value, counts).map(Some)
        }
        FieldAction::DetectOrNull => {
            if !gatehouse_core::mask::may_contain_pii(value) {
                return None;
            }
            let text = std::str::from_utf8(value).ok()?;
            masker.mask_detected(text, counts).map(|_| None)
        }
        FieldAction::Column(mask) => Some(Some(column_mask(
            masker,
            mask,
            std::str::from_utf8(value).ok(),
            counts,
        ))),
    }
}

#[allow(clippy::option_option)]
fn mask_binary_value(
    masker: &Masker,
    action: &FieldAction,
    col: &Column,
    wire: &[u8],
    counts: &mut MaskCounts,
) -> Option<Option<Vec<u8>>> {
    match action {
        FieldAction::Pass => None,
        FieldAction::DetectText => {
            let mut r = crate::codec::Reader::new(wire, "binary value");
            let bytes = r.lenenc_bytes().ok()??;
            if !gatehouse_core::mask::may_contain_pii(bytes) {
                return None;
            }
            let masked = masker.mask_detected_bytes(bytes, counts)?;
            Some(Some(rows::binary_string(&masked)))
        }
        FieldAction::DetectOrNull => {
            let text = rows::binary_value_text(col, wire)?;
            if !gatehouse_core::mask::may_contain_pii(text.as_bytes()) {
                return None;
            }
            masker.mask_detected(&text, counts).map(|_| None)
        }
        FieldAction::Column(mask) => {
            let text = rows::binary_value_text(col, wire);
            let masked = column_mask(masker, mask, text.as_deref(), counts);
            Some(Some(rows::binary_string(&masked)))
        }
    }
}

/// A column rule's mask of one value; values with no exact text form
/// (binary strings, dates in the binary protocol) are redacted outright.
fn column_mask(
    masker: &Masker,
    mask: &ColumnMask,
    text: Option<&str>,
    counts: &mut MaskCounts,
) -> Vec<u8> {
    match text {
        Some(t) => masker.mask_value(t, &mask.strategy, mask.entity, counts),
        None => masker.mask_value("", &Strategy::Redact, mask.entity, counts),
    }
    .into_bytes()
}

/// Mask the message of an ERR packet (a duplicate-key error can echo an
/// SSN). `None` when unchanged.
pub fn mask_err(masker: &Masker, payload: &[u8], counts: &mut MaskCounts) -> Option<Vec<u8>> {
    if !gatehouse_core::mask::may_contain_pii(payload) {
        return None;
    }
    let e = packets::parse_err(payload).ok()?;
    let masked = masker.mask_detected(&e.message, counts)?;
    Some(packets::err(e.code, &e.sqlstate, &masked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::packets::UNSIGNED_FLAG;
    use gatehouse_core::mask::{EntityType, MaskerConfig, TokenizeKey};
    use std::collections::HashMap;

    fn masker() -> Masker {
        let mut strategies = HashMap::new();
        strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
        strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
        Masker::new(MaskerConfig {
            detectors: vec![EntityType::Ssn, EntityType::CardNumber, EntityType::Email],
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"k".to_vec()),
        })
    }

    fn col(name: &str, t: u8, flags: u16) -> Column {
        Column {
            name: name.as_bytes().to_vec(),
            column_type: t,
            flags,
            charset: 45,
            ..Default::default()
        }
    }

    fn card_mask() -> ColumnMask {
        ColumnMask {
            rule: "cards".into(),
            strategy: Strategy::Partial { keep_last: 4 },
            entity: EntityType::CardNumber,
        }
    }

    #[test]
    fn text_rows_mask_columns_and_detect_inside_strings_and_numbers() {
        let m = masker();
        let cols = vec![
            col("card", ty::LONGLONG, UNSIGNED_FLAG),
            col("note", ty::VAR_STRING, 0),
            col("n", ty::LONGLONG, 0),
            col("id", ty::LONG, 0),
        ];
        let plan = RowPlan::new(
            cols,
            vec![Some(card_mask()), None, None, None],
            Detection::TextAndTyped,
            RowFormat::Text,
        );
        let row = rows::text_row([
            Some(&b"4111111111111111"[..]),
            Some(&b"call 123-45-6789 now"[..]),
            Some(&b"4111111111111111"[..]),
            Some(&b"7"[..]),
        ]);
        let mut counts = MaskCounts::default();
        let out = plan.mask_row(&m, &row, &mut counts).unwrap().unwrap();
        let v = rows::parse_text_row(&out, 4).unwrap();
        assert_eq!(v[0], Some(&b"************1111"[..]));
        assert_eq!(v[1], Some(&b"call ***-**-6789 now"[..]));
        assert_eq!(v[2], None, "a detector hit in a number becomes NULL");
        assert_eq!(v[3], Some(&b"7"[..]));
        // The masked column is announced as a string; the others are kept.
        let c = packets::parse_column(&plan.rewrite_column(0).unwrap()).unwrap();
        assert_eq!(c.column_type, ty::VAR_STRING);
        assert!(plan.rewrite_column(1).is_none());
        // Nothing to mask: the original bytes are relayed.
        let clean = rows::text_row([Some(&b"1"[..]), Some(&b"hi"[..]), Some(&b"2"[..]), None]);
        let plan = plan.with_format(RowFormat::Text);
        let unchanged = RowPlan::new(
            vec![
                col("a", ty::LONG, 0),
                col("b", ty::VAR_STRING, 0),
                col("c", ty::LONG, 0),
                col("d", ty::LONG, 0),
            ],
            vec![None; 4],
            Detection::TextAndTyped,
            RowFormat::Text,
        );
        assert!(unchanged
            .mask_row(&m, &clean, &mut counts)
            .unwrap()
            .is_none());
        assert!(plan.is_active());
    }

    #[test]
    fn binary_rows_mask_to_strings_and_null_detected_numbers() {
        use std::borrow::Cow;
        let m = masker();
        let cols = vec![
            col("card", ty::LONGLONG, UNSIGNED_FLAG),
            col("id", ty::LONG, 0),
            col("note", ty::BLOB, 0),
            col("n", ty::LONGLONG, 0),
            col("born", ty::DATE, 0),
        ];
        let dob = ColumnMask {
            rule: "dob".into(),
            strategy: Strategy::Redact,
            entity: EntityType::Column,
        };
        let plan = RowPlan::new(
            cols.clone(),
            vec![Some(card_mask()), None, None, None, Some(dob)],
            Detection::TextAndTyped,
            RowFormat::Binary,
        );
        let values: Vec<Option<Cow<[u8]>>> = vec![
            Some(Cow::Owned(4111111111111111u64.to_le_bytes().to_vec())),
            Some(Cow::Owned(7i32.to_le_bytes().to_vec())),
            Some(Cow::Owned(rows::binary_string(b"mail jane@example.com"))),
            Some(Cow::Owned(4111111111111111i64.to_le_bytes().to_vec())),
            Some(Cow::Owned(vec![4, 0xd0, 0x07, 1, 2])),
        ];
        let row = rows::binary_row(&values);
        let mut counts = MaskCounts::default();
        let out = plan.mask_row(&m, &row, &mut counts).unwrap().unwrap();
        // Decode as the client does: with the rewritten column definitions.
        let client_cols: Vec<Column> = (0..cols.len())
            .map(|i| match plan.rewrite_column(i) {
                Some(c) => packets::parse_column(&c).unwrap(),
                None => cols[i].clone(),
            })
            .collect();
        let v = rows::parse_binary_row(&out, &client_cols).unwrap();
        let text = |i: usize| rows::binary_value_text(&client_cols[i], v[i].unwrap());
        assert_eq!(text(0).as_deref(), Some("************1111"));
        assert_eq!(text(1).as_deref(), Some("7"));
        assert!(text(2).unwrap().starts_with("mail ") && !text(2).unwrap().contains("jane@"));
        assert!(v[3].is_none(), "detected number becomes NULL");
        assert!(text(4).unwrap().contains("REDACTED"), "{:?}", text(4));
        assert!(plan.sample(&out).is_some());
    }

    #[test]
    fn numbers_pass_the_detectors_unless_the_connection_opts_in() {
        let m = masker();
        let cols = vec![col("n", ty::LONGLONG, 0), col("note", ty::VAR_STRING, 0)];
        let plan = RowPlan::new(cols, vec![None, None], Detection::Text, RowFormat::Text);
        let row = rows::text_row([
            Some(&b"4111111111111111"[..]),
            Some(&b"card 4111111111111111"[..]),
        ]);
        let mut counts = MaskCounts::default();
        let out = plan.mask_row(&m, &row, &mut counts).unwrap().unwrap();
        let v = rows::parse_text_row(&out, 2).unwrap();
        assert_eq!(
            v[0],
            Some(&b"4111111111111111"[..]),
            "a number is not guessed at"
        );
        assert_ne!(
            v[1],
            Some(&b"card 4111111111111111"[..]),
            "text is still read"
        );
    }
}
