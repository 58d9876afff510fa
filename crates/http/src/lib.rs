//! The HTTP adapter: HTTPS in, the pipeline in the middle, HTTP(S) out.
//!
//! One listener serves every HTTP connection (OpenAI-compatible LLM
//! endpoints, JSON/function-calling APIs and the Kubernetes API), reached by
//! host name or path prefix. The caller's bearer token is checked and
//! stripped; the gateway adds the upstream credential it holds.

pub mod kube;
pub mod wsframes;
