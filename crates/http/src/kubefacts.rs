//! Kubernetes requests as the classify stage reads them: verb, resource,
//! namespace and name as the API server itself derives them.

use crate::kube::RequestInfo;
use gatehouse_core::classify::http::HttpFacts;

/// Fill `facts` from a Kubernetes API request; a path the API server could
/// read differently than we do is refused.
pub fn read_request(facts: &mut HttpFacts) -> Result<(), String> {
    let info = RequestInfo::parse(&facts.method, &facts.path, &facts.query)
        .map_err(|e| format!("gatehouse cannot read this Kubernetes request: {e}"))?;
    facts.verb = Some(info.effective_verb().to_string());
    if info.is_resource_request {
        let mut resource = info.resource.clone();
        if !info.subresource.is_empty() {
            resource.push('/');
            resource.push_str(&info.subresource);
        }
        facts.resource = Some(resource);
        facts.namespace = (!info.namespace.is_empty()).then(|| info.namespace.clone());
        facts.name = (!info.name.is_empty()).then(|| info.name.clone());
    }
    if let Some(exec) = &info.exec {
        // Patterns see the command an exec runs (`rm -rf`, `psql`).
        facts.text = exec.command_line();
    }
    facts.summary = info.describe();
    Ok(())
}

/// Whether a request opens an interactive stream worth recording.
pub fn is_exec(facts: &HttpFacts) -> bool {
    matches!(
        facts.resource.as_deref(),
        Some("pods/exec") | Some("pods/attach")
    )
}
