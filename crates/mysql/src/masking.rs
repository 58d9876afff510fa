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
use gatehouse_core::mask::{EntityType, MaskCounts, Masker, Strategy};
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
        detect: bool,
        format: RowFormat,
    ) -> RowPlan {
        let mut masks = masks.into_iter();
        let actions: Vec<FieldAction> = columns
            .iter()
            .map(|c| match masks.next().flatten() {
                Some(mask) => FieldAction::Column(mask),
                None if !detect => FieldAction::Pass,
                None if rows::is_text_type(c.column_type) => FieldAction::DetectText,
                None if number_type(c.column_type) => FieldAction::DetectOrNull,
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

/// A mask that redacts everything, for plans that must fail closed.
pub fn redact_all(rule: &str) -> ColumnMask {
    ColumnMask {
        rule: rule.to_string(),
        strategy: Strategy::Redact,
        entity: EntityType::Column,
    }
}
