//! Session credentials stay sealed in memory between requests: a child process (this test
//! binary run again as [`sealed_memory_child`]) holds a customer session with a planted,
//! random secret access key and session token, makes signed SDK calls with it through the
//! operator's customer clients, and then waits; this test reads every readable region of
//! the child's memory (`/proc/<pid>/maps` and `/proc/<pid>/mem`) and counts the planted
//! values. Sealed: zero hits. The control run keeps one plain copy of each value in the
//! child, and the same search must find it, so the search is shown able to fail.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// The operator binary's allocator (src/main.rs), so the child frees memory as it does.
#[global_allocator]
static ALLOCATOR: crossguard::alloc::ZeroOnFree = crossguard::alloc::ZeroOnFree;

/// Set in the child: `sealed`, or `control` (keeps a plaintext copy of each secret).
const CHILD_MODE: &str = "CROSSGUARD_SEALED_MEMORY_CHILD";
/// Set in the child: the port of the parent's fake STS endpoint.
const CHILD_PORT: &str = "CROSSGUARD_SEALED_MEMORY_PORT";
/// Signed calls the child makes before its memory is read.
const CALLS: usize = 3;

const IDENTITY_XML: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::111111111111:assumed-role/crossguard-access/s</Arn><UserId>AROAEXAMPLE:s</UserId><Account>111111111111</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#;

/// A fake STS endpoint in this (the parent) process: answers every request with a
/// GetCallerIdentity result and keeps the requests' heads, so the test can check that the
/// child really signed with the planted credentials.
fn fake_sts() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).ok();
            kept.lock().unwrap().push(head);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{IDENTITY_XML}",
                IDENTITY_XML.len()
            );
            stream.write_all(reply.as_bytes()).ok();
        }
    });
    (port, heads)
}

/// How often `needle` occurs in the readable memory of process `pid`; also returns how
/// many bytes were searched.
fn occurrences_in_memory(pid: u32, needle: &[u8]) -> (usize, usize) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let (mut hits, mut searched) = (0, 0);
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        searched += region.len();
        hits += region
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count();
    }
    (hits, searched)
}

/// What one child run showed: hits of the secret key and of the token, bytes searched,
/// and the heads of the requests the child sent.
struct Run {
    secret_hits: usize,
    token_hits: usize,
    searched: usize,
    secret: String,
    token: String,
    heads: Vec<String>,
}

fn run_child(mode: &str) -> Run {
    let (port, heads) = fake_sts();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sealed_memory_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_PORT, port.to_string())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut secret, mut token) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
        // libtest may have started the line ("test sealed_memory_child ... ").
        let after = |tag: &str| line.split_once(tag).map(|(_, v)| v.trim_end().to_string());
        if let Some(v) = after("planted-secret=") {
            secret = v;
        } else if let Some(v) = after("planted-token=") {
            token = v;
        } else if line.contains("between-requests") {
            break;
        }
    }
    assert!(secret.len() >= 40 && token.len() >= 100, "{secret} {token}");
    let pid = child.id();
    let (secret_hits, searched) = occurrences_in_memory(pid, secret.as_bytes());
    let (token_hits, _) = occurrences_in_memory(pid, token.as_bytes());
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let heads = heads.lock().unwrap().clone();
    Run {
        secret_hits,
        token_hits,
        searched,
        secret,
        token,
        heads,
    }
}

#[test]
fn session_credentials_are_sealed_between_requests() {
    let sealed = run_child("sealed");
    // The calls really were signed with the planted session: its token went out.
    assert_eq!(sealed.heads.len(), CALLS, "{:?}", sealed.heads);
    let token_header = format!("x-amz-security-token: {}", sealed.token);
    assert!(
        sealed.heads.iter().all(|h| h
            .to_ascii_lowercase()
            .contains(&token_header.to_ascii_lowercase())),
        "{:?}",
        sealed.heads
    );
    assert!(
        sealed.searched > 1 << 20,
        "searched {} bytes",
        sealed.searched
    );
    assert_eq!(
        (sealed.secret_hits, sealed.token_hits),
        (0, 0),
        "plaintext credentials found in the memory of the process between requests"
    );

    // The same search finds a plain copy kept in the control child.
    let control = run_child("control");
    assert_ne!(control.secret, sealed.secret, "fresh values per run");
    assert!(
        control.secret_hits >= 1 && control.token_hits >= 1,
        "the search missed the control copies: {} {}",
        control.secret_hits,
        control.token_hits
    );
}

/// A random string of `len` letters and digits, built in place (no reallocation leaves a
/// partial copy behind).
fn random_text(prefix: &str, len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut text = String::with_capacity(len);
    text.push_str(prefix);
    while text.len() < len {
        text.push(CHARS[rng.random_range(0..CHARS.len())] as char);
    }
    text
}

/// Write `parts` to stdout without Rust's stdout buffer (which would keep a copy).
fn say(parts: &[&str]) {
    for p in parts {
        // SAFETY: writes the bytes of a live &str to fd 1.
        let n = unsafe { libc::write(1, p.as_ptr().cast(), p.len()) };
        assert_eq!(n, p.len() as isize);
    }
}

/// The child's side of [`session_credentials_are_sealed_between_requests`]; does nothing
/// when run as an ordinary test.
#[test]
fn sealed_memory_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let port: u16 = std::env::var(CHILD_PORT).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        crossguard::install_crypto_provider();
        let secret = random_text("PLANTEDSECRET", 40);
        let token = random_text("PLANTEDTOKEN", 300);
        say(&["planted-secret=", &secret, "\nplanted-token=", &token, "\n"]);
        let control = (mode == "control").then(|| (secret.clone(), token.clone()));
        let credentials = crossguard::aws::SessionCredentials {
            access_key_id: "ASIAPLANTEDKEYID0000".into(),
            secret_access_key: crossguard::seal::Sealed::from(secret),
            session_token: crossguard::seal::Sealed::from(token),
            expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            lifetime: std::time::Duration::from_secs(3600),
        };
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDOPERATOR",
                "operator-secret",
                None,
                None,
                "operator",
            ))
            .load()
            .await;
        let metrics = Arc::new(crossguard::metrics::Metrics::new());
        let factory = crossguard::aws::sdk::SdkFactory::from_config(config, metrics);
        use crossguard::aws::ClientFactory;
        let clients = factory.customer(
            "111111111111",
            &credentials,
            "us-east-1",
            Arc::new(crossguard::audit::NoAudit),
        );
        for _ in 0..CALLS {
            clients.identity.caller_identity().await.unwrap();
        }
        say(&["between-requests\n"]);
        // Hold the session and its clients, as the operator does between requests, until
        // the parent has read this process's memory and closes stdin.
        let mut rest = Vec::new();
        std::io::stdin().read_to_end(&mut rest).ok();
        drop((clients, credentials, control));
    });
}
