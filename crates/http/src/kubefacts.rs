//! Kubernetes requests as the classify stage reads them.

use gatehouse_core::classify::http::HttpFacts;

/// Fill `facts` from a Kubernetes API path.
pub fn read_request(facts: &mut HttpFacts) {
    facts.verb = Some(facts.method.to_ascii_lowercase());
    facts.summary = facts.request_line();
}
