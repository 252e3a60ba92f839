//! Log filtering that keeps credentials out of logs at every level.

use tracing_subscriber::EnvFilter;

/// Libraries whose debug/trace output can contain signed request headers (the session token
/// travels in `x-amz-security-token`) or raw HTTP bodies. They are capped at `info` whatever
/// RUST_LOG says, so no log level can leak credentials.
pub const CAPPED_TARGETS: [&str; 8] = [
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_runtime",
    "aws_config",
    "hyper",
    "hyper_util",
];

/// The filter for `rust_log` (RUST_LOG; default `info`) with the credential-bearing
/// libraries capped at `info`.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    // Drop the user's own directives for capped targets, then add the caps, so the cap
    // wins however RUST_LOG was written.
    let user: Vec<&str> = rust_log
        .unwrap_or("info")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !CAPPED_TARGETS.iter().any(|t| d.starts_with(t)))
        .collect();
    let mut filter = EnvFilter::new(if user.is_empty() {
        "info".to_string()
    } else {
        user.join(",")
    });
    for target in CAPPED_TARGETS {
        filter = filter.add_directive(format!("{target}=info").parse().expect("static directive"));
    }
    filter
}

/// Credentials live in this process's memory: make sure no core dump can carry them to
/// disk (and that other processes of the same user cannot ptrace-attach to read them).
pub fn disable_core_dumps() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes a flag of the calling process.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    fn logged(rust_log: &str) -> String {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(Some(rust_log)))
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_sigv4::http_request", "canonical request x-amz-security-token:CANARY1");
            tracing::debug!(target: "aws_smithy_runtime::client", "body CANARY2");
            tracing::trace!(target: "hyper::proto", "headers CANARY3");
            tracing::info!(target: "aws_config", "loaded config");
            tracing::trace!(target: "crossguard::controller", "our own trace line");
        });
        String::from_utf8(capture.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn credential_bearing_libraries_stay_at_info_even_at_trace() {
        for rust_log in [
            "trace",
            "trace,aws_sigv4=trace,aws_smithy_runtime=trace,hyper=trace",
            "aws_sigv4=trace",
        ] {
            let out = logged(rust_log);
            assert!(!out.contains("CANARY"), "{rust_log}: {out}");
            assert!(
                out.contains("loaded config"),
                "{rust_log}: info still passes: {out}"
            );
        }
        assert!(logged("trace").contains("our own trace line"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn core_dumps_are_disabled() {
        disable_core_dumps().expect("prctl");
        // SAFETY: PR_GET_DUMPABLE only reads a flag of the calling process.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        assert_eq!(dumpable, 0);
    }
}
