//! The Gatehouse binary's building blocks: configuration, TLS material,
//! wiring the pipeline to its listeners, the demo, and the CLI commands.
//! Kept as a library so the integration tests run the very same code.

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
pub mod llmdemo;
pub mod mariadbcluster;
pub mod pgcluster;
pub mod policytext;
pub mod sshtarget;
pub mod tls;
