//! Cancel keys: the client gets the gateway's key, never the target's.
//!
//! A CancelRequest arrives on a fresh, unauthenticated connection, so the
//! gateway hands each session a random (pid, secret) of its own and maps it
//! to the target backend. Knowing a gateway key lets one cancel only that
//! session's running query, as in PostgreSQL itself.

use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;

/// Where a session's queries run, for forwarding a cancel.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// The connection (its address, and TLS when it requires it: the
    /// cancel travels as the session did).
    pub conn: gatehouse_core::policy::ConnectionConfig,
    /// The target backend's (pid, secret).
    pub key: (i32, i32),
    /// Woken by a cancel, so a statement held for approval is withdrawn
    /// (it is not running on the target, so the target cannot cancel it).
    pub held: std::sync::Arc<tokio::sync::Notify>,
}

/// Live sessions' cancel keys.
#[derive(Default)]
pub struct CancelRegistry {
    by_pid: Mutex<HashMap<i32, (i32, CancelTarget)>>,
}

impl CancelRegistry {
    /// Register a session; returns the (pid, secret) to give the client.
    pub fn register(&self, target: CancelTarget) -> (i32, i32) {
        let mut rng = rand::thread_rng();
        let mut map = self.by_pid.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let pid: i32 = rng.gen_range(1..i32::MAX);
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(pid) {
                let secret: i32 = rng.gen();
                e.insert((secret, target));
                return (pid, secret);
            }
        }
    }

    /// Forget a session's key when it ends.
    pub fn remove(&self, pid: i32) {
        self.by_pid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// The target to cancel for a client's key, comparing the secret in
    /// constant time.
    pub fn lookup(&self, pid: i32, secret: i32) -> Option<CancelTarget> {
        let map = self.by_pid.lock().unwrap_or_else(|p| p.into_inner());
        let (expected, target) = map.get(&pid)?;
        // XOR then compare to zero: no early exit on the first differing bit.
        if (expected ^ secret) == 0 {
            Some(target.clone())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_lookup_remove() {
        let r = CancelRegistry::default();
        let conn: gatehouse_core::policy::ConnectionConfig = toml::from_str(
            "name = \"bank\"\ntype = \"postgres\"\nhost = \"h\"\nport = 1\nallow_groups = [\"dba\"]\n",
        )
        .unwrap();
        let t = CancelTarget {
            conn,
            key: (10, 20),
            held: Default::default(),
        };
        let (pid, secret) = r.register(t);
        assert_eq!(r.lookup(pid, secret).map(|t| t.key), Some((10, 20)));
        assert!(r.lookup(pid, secret.wrapping_add(1)).is_none());
        r.remove(pid);
        assert!(r.lookup(pid, secret).is_none());
    }
}
