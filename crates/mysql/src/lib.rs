//! The MySQL and MariaDB adapter.
//!
//! [`codec`] turns bytes into packets and back with no I/O. The rest runs
//! one client session through the shared pipeline: TLS and the handshake,
//! the caller's token as the password (`mysql_clear_password`), the
//! gateway's own login to the target, then every command classified,
//! decided, recorded and its result rows masked as they stream back.

pub mod auth;
pub mod codec;
pub mod io;
pub mod masking;
mod proxy;
pub mod session;
pub mod target;

pub use proxy::parse_kill;
/// The COM_STMT_EXECUTE parameter reader, for the fuzz targets.
#[doc(hidden)]
pub use proxy::prepared::show_params;
pub use session::{AdapterSettings, MySqlAdapter};
