//! The PostgreSQL adapter.
//!
//! [`codec`] turns bytes into messages and back with no I/O. The rest runs
//! one client session through the shared pipeline: TLS and start-up, the
//! caller's token as the password, the gateway's own login to the target,
//! then every command classified, decided, recorded and its results masked
//! as they stream back.

pub mod cancel;
pub mod codec;
mod fastpath;
pub mod io;
pub mod masking;
mod proxy;
pub mod session;
pub mod syntax;
pub mod target;

pub use session::{AdapterSettings, OriginalsSealer, PostgresAdapter};
