//! Classifications cached by normalized statement.
//!
//! Parsing costs tens of microseconds; normalizing costs a single pass. A
//! gateway sees the same statements with different literals over and over,
//! so each distinct normalized statement is parsed once.

use super::{classify, normalize, Classification, Dialect};
use lru::LruCache;
use parking_lot::Mutex;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// An LRU cache of classifications, shared by all sessions.
pub struct ClassifierCache {
    entries: Mutex<LruCache<(Dialect, String), Arc<Classification>>>,
}

impl ClassifierCache {
    /// A cache holding up to `capacity` distinct statements.
    pub fn new(capacity: usize) -> ClassifierCache {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        ClassifierCache {
            entries: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Classify, reusing the result for statements that differ only in literals.
    pub fn classify(&self, sql: &str, dialect: Dialect) -> Arc<Classification> {
        let key = (dialect, normalize(sql, dialect));
        if let Some(hit) = self.entries.lock().get(&key) {
            return hit.clone();
        }
        let fresh = Arc::new(classify(sql, dialect));
        self.entries.lock().put(key, fresh.clone());
        fresh
    }
}
