//! Request recording (what tests assert on: "no request to secrets", "no
//! write verb") and injected failures.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One HTTP request the server answered, in arrival-completion order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string without `?` ("" when none).
    pub query: String,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// Whether an Authorization header was sent (never its value).
    pub authorized: bool,
    pub status: u16,
}

impl RecordedRequest {
    /// POST, PUT, PATCH or DELETE.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// A watch request (`?watch=true` or the legacy `/watch/` prefix).
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1")
            || self.path.contains("/watch/")
    }

    /// Whether the path addresses `resource` (plural), with or without a
    /// name or subresource after it.
    pub fn targets(&self, resource: &str) -> bool {
        self.path.split('/').any(|seg| seg == resource)
    }
}

/// A failure to return instead of handling matching requests.
#[derive(Clone, Debug)]
struct Fault {
    method: Option<String>,
    path_contains: String,
    status: u16,
    remaining: usize,
}

pub struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    log: Option<Mutex<File>>,
    faults: Mutex<Vec<Fault>>,
}

impl Recorder {
    pub fn new(log_path: Option<&Path>) -> std::io::Result<Self> {
        let log = match log_path {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Recorder {
            requests: Mutex::new(Vec::new()),
            log,
            faults: Mutex::new(Vec::new()),
        })
    }

    pub fn record(&self, r: RecordedRequest) {
        if let Some(log) = &self.log
            && let Ok(mut f) = log.lock()
            && let Ok(line) = serde_json::to_string(&r)
        {
            // Best effort: a failing log must not fail the request.
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
        self.requests.lock().expect("recorder lock").push(r);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("recorder lock").clone()
    }

    pub fn clear(&self) {
        self.requests.lock().expect("recorder lock").clear();
    }

    pub fn add_fault(&self, method: Option<&str>, path_contains: &str, status: u16, times: usize) {
        self.faults.lock().expect("fault lock").push(Fault {
            method: method.map(str::to_ascii_uppercase),
            path_contains: path_contains.to_string(),
            status,
            remaining: times,
        });
    }

    /// Disarm every injected fault.
    pub fn clear_faults(&self) {
        self.faults.lock().expect("fault lock").clear();
    }

    /// The injected status for this request, consuming one use of the fault.
    pub fn take_fault(&self, method: &str, path: &str) -> Option<u16> {
        let mut faults = self.faults.lock().expect("fault lock");
        let f = faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.method.as_deref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        })?;
        f.remaining -= 1;
        let status = f.status;
        faults.retain(|f| f.remaining > 0);
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, query: &str) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            content_type: None,
            user_agent: None,
            authorized: false,
            status: 200,
        }
    }

    #[test]
    fn classifies_requests() {
        assert!(req("PATCH", "/api/v1/namespaces/a/pods/p", "").is_write());
        assert!(!req("GET", "/api/v1/pods", "").is_write());
        assert!(req("GET", "/api/v1/pods", "watch=true&timeoutSeconds=5").is_watch());
        assert!(req("GET", "/api/v1/namespaces/a/secrets/s", "").targets("secrets"));
        assert!(!req("GET", "/api/v1/namespaces/secrets-ns/pods", "").targets("secrets"));
    }

    #[test]
    fn faults_are_consumed() {
        let r = Recorder::new(None).unwrap();
        r.add_fault(Some("get"), "/configmaps", 503, 2);
        assert_eq!(r.take_fault("POST", "/api/v1/configmaps"), None);
        assert_eq!(r.take_fault("GET", "/api/v1/configmaps"), Some(503));
        assert_eq!(r.take_fault("GET", "/api/v1/configmaps"), Some(503));
        assert_eq!(r.take_fault("GET", "/api/v1/configmaps"), None);
    }
}
