//! The Gatehouse binary's building blocks: configuration, TLS material,
//! wiring the pipeline to its listeners, the demo, and the CLI commands.
//! The throwaway servers the demo starts live in `gatehouse-testbed`.
//! Kept as a library so the integration tests run the very same code.

/// `println!` that returns the write's error instead of panicking on it
/// (see [`cli::to_stdout`]): a reader that closes the pipe early
/// (`gatehouse audit export | head`) ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::cli::to_stdout(writeln!(std::io::stdout(), $($arg)*))
    }};
}

/// `print!` that returns the write's error (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::cli::to_stdout(write!(std::io::stdout(), $($arg)*))
    }};
}

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod demo_data;
pub mod evidence;
pub use gatehouse_core::duration;
pub mod files;
pub mod gateway;
pub mod kubeconfig;
pub mod policytext;
pub mod tls;
