//! When to try again: exponential backoff with jitter, and `Retry-After`.
//!
//! Pure functions (randomness is passed in) so the schedule is unit-tested.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Delay before the next attempt after `failed_attempts` failures (1 for the
/// first failure): `initial * 2^(failed_attempts-1)`, capped at `max`, then
/// jittered into `[cap/2, cap]` by `random` ("equal jitter": receivers that
/// failed together do not retry together, yet the delay never collapses to
/// zero).
pub(crate) fn backoff_delay(
    failed_attempts: u32,
    initial: Duration,
    max: Duration,
    random: u64,
) -> Duration {
    let initial_ms = initial.as_millis();
    let max_ms = max.as_millis();
    let doublings = failed_attempts.saturating_sub(1);
    // 2^doublings saturates well before u128 overflows for any sane input.
    let factor = 1u128.checked_shl(doublings.min(100)).unwrap_or(u128::MAX);
    let capped = initial_ms.saturating_mul(factor).min(max_ms);
    let half = capped / 2;
    let span = capped - half; // jitter range, inclusive
    let jitter = u128::from(random) % (span + 1);
    let ms = half + jitter;
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date. `None` when
/// it is neither (the computed backoff is used instead). The caller caps it.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // A huge number saturates (and is capped by the caller).
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.with_timezone(&Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// A non-cryptographic random number for jitter and delivery ids, from the
/// standard library's randomly keyed hasher (no extra dependency).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_then_caps() {
        let init = MS(500);
        let max = Duration::from_secs(300);
        // random = u64::MAX % (span+1) is arbitrary; use the bounds instead.
        for (n, full) in [(1, 500), (2, 1000), (3, 2000), (4, 4000), (10, 256_000)] {
            let d = backoff_delay(n, init, max, 0);
            assert_eq!(d, MS(full / 2), "attempt {n} low end");
            let top = backoff_delay(n, init, max, full - full / 2);
            assert_eq!(top, MS(full), "attempt {n} high end");
        }
        assert_eq!(backoff_delay(11, init, max, 0), MS(150_000));
        assert_eq!(backoff_delay(11, init, max, 150_000), MS(300_000));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let init = MS(100);
        let max = MS(10_000);
        for n in 1..20u32 {
            for _ in 0..50 {
                let d = backoff_delay(n, init, max, random_u64());
                let full = (100u64 << (n - 1).min(20)).min(10_000);
                assert!(d >= MS(full / 2) && d <= MS(full), "n={n} d={d:?}");
            }
        }
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let d = backoff_delay(u32::MAX, Duration::from_secs(u64::MAX), MS(1000), u64::MAX);
        assert!(d <= MS(1000));
        assert_eq!(backoff_delay(0, MS(10), MS(1000), 0), MS(5));
        assert_eq!(backoff_delay(3, MS(1), MS(0), 7), MS(0));
    }

    #[test]
    fn retry_after() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn random_varies() {
        let a = random_u64();
        let b = random_u64();
        assert_ne!(a, b);
    }
}
