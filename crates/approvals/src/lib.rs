//! Just-in-time approvals and time-bound access grants.
//!
//! A held command or an access request becomes a [`Request`]; approvers
//! decide it through the API, the CLI or the console; the session holding
//! the command is woken and forwards it exactly once. Requests and grants
//! are kept in SQLite beside the audit trail, and every step is recorded in
//! the trail itself.

pub mod broker;
pub mod model;
pub mod store;

pub use broker::{Announcer, Broker, BrokerError};
pub use model::{Grant, Request, RequestKind, Status};
pub use store::{RequestFilter, Store};
