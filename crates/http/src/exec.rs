//! Recording `kubectl exec`/`attach` streams.

use crate::proxy::Exchange;
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::mask::MaskCounts;

/// Watches an upgraded stream's bytes.
pub(crate) struct ExecTap;

impl ExecTap {
    /// Bytes went by, from the client when `from_client`.
    pub(crate) fn observe(&mut self, _from_client: bool, _bytes: &[u8]) {}

    /// Close the recording; what the result event says about it.
    pub(crate) fn close(self) -> (Option<serde_json::Value>, MaskCounts) {
        (None, MaskCounts::default())
    }
}

/// A tap for streams worth recording (exec and attach).
pub(crate) fn tap_for(_exchange: &Exchange, _facts: &HttpFacts) -> Option<ExecTap> {
    None
}
