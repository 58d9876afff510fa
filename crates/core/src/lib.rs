//! Gatehouse's protocol-free core.
//!
//! Everything an adapter needs to decide about a command lives here and none
//! of it touches a socket: who the caller is ([`Identity`]), what a SQL
//! statement does ([`classify`]), what policy says about it ([`policy`]) and
//! how values are masked on the way out ([`mask`]). Adapters translate their
//! wire protocol into these types and back.

pub mod approval;
pub mod classify;
pub mod deadline;
pub mod duration;
pub mod events;
pub mod framed;
pub mod identity;
pub mod lifecycle;
pub mod mask;
pub mod pipeline;
pub mod policy;
pub mod private;
pub mod recording;
pub mod serve;
pub mod session;
pub mod signin;
pub mod target;
pub mod terminal;
pub mod trail;
pub mod verdict;

pub use identity::Identity;
pub use verdict::Verdict;

/// A regular expression written in the source. Such a pattern is part of the
/// program, not input: if it did not compile, every test that reaches it
/// would fail, so it is compiled without an error path (meant for a
/// `LazyLock` or `OnceLock` static).
#[allow(
    clippy::expect_used,
    reason = "a pattern literal in the source compiles, or no test passes"
)]
pub fn static_regex(pattern: &'static str) -> regex::Regex {
    regex::Regex::new(pattern).expect("a regex literal in the source compiles")
}
