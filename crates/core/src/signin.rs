//! Failed sign-ins, limited and counted.
//!
//! Every refused token is recorded (`auth.failure`), which makes the trail
//! a target: a client sending bad tokens in a loop would grow it without
//! bound, and each attempt costs a signature check. So failures are
//! counted in fixed windows:
//!
//! - per source address: past `per_address` failures in a window, further
//!   attempts from that address are refused before their token is looked
//!   at, until the window ends (a valid token from it waits too; the
//!   client is told when to retry);
//! - per user name: past `per_user` failures naming one user, further
//!   failures naming it are counted instead of recorded one by one (a
//!   valid token still signs in, so nobody can lock a person out by
//!   sending bad tokens in their name);
//! - overall: at most `recorded_per_window` failures are recorded one by
//!   one per window, whatever their addresses.
//!
//! What was not recorded one by one is recorded once per window as an
//! `auth.failure.summary` event: how many, and the addresses and user
//! names with the most. The trail so grows by at most
//! `recorded_per_window + 1` events per window however many bad tokens
//! arrive; memory is bounded by [`MAX_TRACKED`] keys per window, and
//! user names are cut to [`MAX_USER`] bytes.
//!
//! An IPv6 client is counted by its /64 (one host holds a whole /64, so
//! counting /128s would give it billions of tries), and an IPv4-mapped
//! address as its IPv4. Once [`MAX_TRACKED`] addresses are counted in a
//! window, every further address shares one count, so filling the table
//! does not lift the limit.

use crate::events::AuthFailureSummary;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses (and, apart, user names) tracked per window; past it, new
/// keys share the overall cap only.
pub const MAX_TRACKED: usize = 10_000;

/// How many addresses and user names a summary names.
pub const SUMMARY_TOP: usize = 20;

/// User names are kept (counted and recorded) up to this many bytes: a
/// client may send kilobytes as its user name.
pub const MAX_USER: usize = 128;

/// `user` cut to [`MAX_USER`] bytes, on a character boundary.
pub fn user_name(user: &str) -> &str {
    if user.len() <= MAX_USER {
        return user;
    }
    let mut end = MAX_USER;
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

/// What an address is counted as: IPv4 itself (also when mapped into
/// IPv6), IPv6 by its /64.
fn counted_as(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The shared count of addresses past [`MAX_TRACKED`] (an unspecified
/// address no client has).
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// The limits (`[identity] sign_in_failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures from one address per window before it is refused outright.
    pub per_address: u32,
    /// Failures naming one user per window before they are only counted.
    pub per_user: u32,
    /// Failures recorded one by one per window, overall.
    pub recorded_per_window: u32,
    /// The window.
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // An office behind one NAT address may hold many people whose
        // tokens expired at once: the address limit is the looser one.
        Limits {
            per_address: 30,
            per_user: 10,
            recorded_per_window: 200,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do with a failed sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Record it as an `auth.failure` event.
    Record,
    /// Count it in the window's summary.
    Count,
}

/// An attempt refused before its token was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When the address may try again.
    pub retry_after: Duration,
}

/// The failure counts of the gateway.
#[derive(Debug)]
pub struct SignInLimiter {
    limits: Limits,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    by_address: HashMap<IpAddr, u32>,
    by_user: HashMap<String, u32>,
    recorded: u32,
    /// Attempts refused before their token was checked.
    refused: u64,
    /// Failures counted, not recorded one by one.
    unrecorded: u64,
    /// Of the refused and unrecorded, by address and by user name.
    counted_by_address: HashMap<String, u64>,
    counted_by_user: HashMap<String, u64>,
    /// The last window's summary, until it is taken.
    summary: Option<AuthFailureSummary>,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            started: now,
            started_at: chrono::Utc::now(),
            by_address: HashMap::new(),
            by_user: HashMap::new(),
            recorded: 0,
            refused: 0,
            unrecorded: 0,
            counted_by_address: HashMap::new(),
            counted_by_user: HashMap::new(),
            summary: None,
        }
    }

    /// Start a new window if this one is over, keeping its summary.
    fn roll(&mut self, now: Instant, length: Duration) {
        if now.duration_since(self.started) < length {
            return;
        }
        let pending = self.summary.take();
        let ended = std::mem::replace(self, Window::new(now));
        self.summary = pending.or_else(|| ended.summary(length));
    }

    fn summary(self, length: Duration) -> Option<AuthFailureSummary> {
        if self.refused == 0 && self.unrecorded == 0 {
            return None;
        }
        Some(AuthFailureSummary {
            window_secs: length.as_secs(),
            from: self.started_at.to_rfc3339(),
            to: chrono::Utc::now().to_rfc3339(),
            refused_unchecked: self.refused,
            failed_unrecorded: self.unrecorded,
            addresses: top(self.counted_by_address),
            users: top(self.counted_by_user),
        })
    }

    fn count(&mut self, addr: Option<IpAddr>, user: &str) {
        for (map, key) in [
            (&mut self.counted_by_address, addr.map(|a| a.to_string())),
            (&mut self.counted_by_user, Some(user.to_string())),
        ] {
            let Some(key) = key.filter(|k| !k.is_empty()) else {
                continue;
            };
            if map.len() < MAX_TRACKED || map.contains_key(&key) {
                *map.entry(key).or_default() += 1;
            }
        }
    }
}

/// The keys with the highest counts, highest first.
fn top(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(SUMMARY_TOP);
    v
}

/// Add one to `key`'s count; past [`MAX_TRACKED`] keys a new one is
/// counted as `overflow` (the count it shares), or not at all (`None`).
fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, overflow: Option<K>) -> u32 {
    let key = if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        match overflow {
            Some(o) => o,
            None => return 0,
        }
    } else {
        key
    };
    let n = map.entry(key).or_default();
    *n = n.saturating_add(1);
    *n
}

/// The key an address is counted under in `map`: its own, or the shared
/// one once the table is full.
fn address_key(map: &HashMap<IpAddr, u32>, addr: IpAddr) -> IpAddr {
    let addr = counted_as(addr);
    if map.len() >= MAX_TRACKED && !map.contains_key(&addr) {
        OVERFLOW
    } else {
        addr
    }
}

impl SignInLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> SignInLimiter {
        SignInLimiter {
            limits,
            window: Mutex::new(Window::new(Instant::now())),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Before a token is checked: whether `addr` may try now.
    pub fn admit(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        let Some(addr) = addr else { return Ok(()) };
        let mut w = self.window.lock();
        w.roll(now, self.limits.window);
        let key = address_key(&w.by_address, addr);
        let failures = w.by_address.get(&key).copied().unwrap_or(0);
        if failures < self.limits.per_address {
            return Ok(());
        }
        w.refused += 1;
        // Counted by address only: the user name of an attempt refused
        // unchecked is the client's say-so.
        w.count(Some(key), "");
        // In whole seconds, rounded up: clients are told seconds.
        let left = self
            .limits
            .window
            .saturating_sub(now.duration_since(w.started));
        let retry_after =
            Duration::from_secs((left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1));
        Err(Limited { retry_after })
    }

    /// A token from `addr` naming `user` was refused: record it, or count
    /// it for the window's summary.
    pub fn failed(&self, addr: Option<IpAddr>, user: &str, now: Instant) -> Failure {
        let mut w = self.window.lock();
        w.roll(now, self.limits.window);
        let user = user_name(user);
        let address = addr.map(|a| address_key(&w.by_address, a));
        let from_address = address.map_or(0, |a| bump(&mut w.by_address, a, Some(OVERFLOW)));
        let for_user = if user.is_empty() {
            0
        } else {
            bump(&mut w.by_user, user.to_string(), None)
        };
        let within = from_address <= self.limits.per_address
            && for_user <= self.limits.per_user
            && w.recorded < self.limits.recorded_per_window;
        if within {
            w.recorded += 1;
            Failure::Record
        } else {
            w.unrecorded += 1;
            w.count(address, user);
            Failure::Count
        }
    }

    /// The summary of a window that has ended, once.
    pub fn take_summary(&self, now: Instant) -> Option<AuthFailureSummary> {
        let mut w = self.window.lock();
        w.roll(now, self.limits.window);
        w.summary.take()
    }

    /// The summary of the window so far, ending it (the gateway stops).
    pub fn close(&self) -> Option<AuthFailureSummary> {
        let mut w = self.window.lock();
        let pending = w.summary.take();
        let ended = std::mem::replace(&mut *w, Window::new(Instant::now()));
        pending.or_else(|| ended.summary(self.limits.window))
    }
}

impl Default for SignInLimiter {
    fn default() -> Self {
        SignInLimiter::new(Limits::default())
    }
}

/// The IP address of a client address as adapters give it (`ip:port`,
/// or an IP alone).
pub fn client_ip(client_addr: &str) -> Option<IpAddr> {
    client_addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| client_addr.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> SignInLimiter {
        SignInLimiter::new(Limits {
            per_address: 3,
            per_user: 2,
            recorded_per_window: 5,
            window: Duration::from_secs(60),
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_past_its_limit_waits_for_the_window() {
        let l = limiter();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.admit(ip("10.0.0.1"), t0), Ok(()));
            assert_eq!(
                l.failed(ip("10.0.0.1"), &format!("u{i}"), t0),
                Failure::Record
            );
        }
        let limited = l.admit(ip("10.0.0.1"), t0 + Duration::from_secs(20));
        assert_eq!(
            limited,
            Err(Limited {
                retry_after: Duration::from_secs(40)
            })
        );
        assert_eq!(l.admit(ip("10.0.0.2"), t0), Ok(()), "others may try");
        // The next window lets it try again and reports what was refused.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(l.admit(ip("10.0.0.1"), t1), Ok(()));
        let s = l.take_summary(t1).expect("a summary");
        assert_eq!((s.refused_unchecked, s.failed_unrecorded), (1, 0));
        assert_eq!(s.addresses, [("10.0.0.1".to_string(), 1)]);
        assert!(l.take_summary(t1).is_none(), "taken once");
    }

    #[test]
    fn a_user_name_past_its_limit_is_counted_not_locked_out() {
        let l = limiter();
        let t0 = Instant::now();
        let from = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
        let got: Vec<Failure> = from.iter().map(|a| l.failed(ip(a), "ana", t0)).collect();
        assert_eq!(
            got,
            [
                Failure::Record,
                Failure::Record,
                Failure::Count,
                Failure::Count
            ]
        );
        // Nothing refuses ana's next attempt: only her address could.
        assert_eq!(l.admit(ip("10.0.0.5"), t0), Ok(()));
        let s = l.close().expect("a summary");
        assert_eq!(s.failed_unrecorded, 2);
        assert_eq!(s.users, [("ana".to_string(), 2)]);
    }

    #[test]
    fn the_trail_takes_a_bounded_number_of_failures_per_window() {
        let l = limiter();
        let t0 = Instant::now();
        let mut recorded = 0;
        for i in 0..1000u32 {
            let addr = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            if l.admit(Some(addr), t0).is_ok()
                && l.failed(Some(addr), &format!("u{i}"), t0) == Failure::Record
            {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 5, "recorded_per_window");
        let s = l.close().expect("a summary");
        assert_eq!(s.failed_unrecorded, 995);
        assert_eq!(s.addresses.len(), SUMMARY_TOP);
        assert!(
            l.close().is_none(),
            "a window without failures says nothing"
        );
    }

    #[test]
    fn an_ipv6_host_is_one_address_and_a_full_table_still_limits() {
        let l = limiter();
        let t0 = Instant::now();
        for host in ["2001:db8::1", "2001:db8::2", "::ffff:10.0.0.1"] {
            let _ = l.failed(ip(host), "x", t0);
        }
        assert!(l.admit(ip("2001:db8::99"), t0).is_ok(), "2 of 3 in the /64");
        let _ = l.failed(ip("2001:db8::3"), "x", t0);
        assert!(l.admit(ip("2001:db8::ffff"), t0).is_err(), "the /64 is one");
        assert!(
            l.admit(ip("10.0.0.1"), t0).is_ok(),
            "a mapped IPv4 is the IPv4"
        );

        // Fill the table; new addresses then share one count.
        let l = limiter();
        for i in 0..MAX_TRACKED as u32 {
            let _ = l.failed(Some(IpAddr::from(i.to_be_bytes())), "", t0);
        }
        for i in 0..3u8 {
            let _ = l.failed(Some(IpAddr::from([198, 51, 100, i])), "", t0);
        }
        assert!(
            l.admit(ip("203.0.113.7"), t0).is_err(),
            "past the table, addresses share a limited count"
        );
    }

    #[test]
    fn long_user_names_are_cut() {
        let long = "é".repeat(200);
        let cut = user_name(&long);
        assert!(cut.len() <= MAX_USER && long.starts_with(cut));
        assert_eq!(user_name("ana"), "ana");
    }

    #[test]
    fn client_addresses_parse_with_or_without_a_port() {
        assert_eq!(client_ip("127.0.0.1:5432"), ip("127.0.0.1"));
        assert_eq!(client_ip("[::1]:22"), ip("::1"));
        assert_eq!(client_ip("::1"), ip("::1"));
        assert_eq!(client_ip("unix socket"), None);
    }
}
