//! Every cause appears once when an error is printed as a chain (`{:#}`, what `main`
//! prints through anyhow), and errors a customer reads through `to_string()` in a status
//! condition still carry their cause in the message alone.

use crossguard::analysis::PriceTable;
use crossguard::aws::AwsError;
use crossguard::cluster::reader::ReadError;
use crossguard::credentials::BrokerError;
use crossguard::sanitize::{Sanitizer, sanitize_documents};
use crossguard::store::{S3Options, Store};

/// The error as `main` prints it: each message of the `source()` chain, joined by ": ".
fn chain<E: std::error::Error + Send + Sync + 'static>(e: E) -> String {
    format!("{:#}", anyhow::Error::from(e))
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn broker_errors_carry_aws_answer_once() {
    let aws = AwsError::new(
        "sts",
        "AssumeRole",
        Some("AccessDenied".into()),
        Some("User is not authorized to perform sts:AssumeRole".into()),
        Some(403),
        Some("req-1".into()),
    );
    let cause = "User is not authorized to perform sts:AssumeRole";
    let e = BrokerError::AssumeRole {
        role_arn: "arn:aws:iam::111122223333:role/crossguard".into(),
        aws: aws.clone(),
    };
    // The customer's status shows `to_string()` alone: the cause must be in it.
    assert_eq!(count(&e.to_string(), cause), 1, "{e}");
    assert_eq!(count(&chain(e), cause), 1);
    let e = BrokerError::VerifyIdentity { aws };
    assert_eq!(count(&e.to_string(), cause), 1, "{e}");
    assert_eq!(count(&chain(e), cause), 1);
}

#[tokio::test]
async fn store_errors_carry_the_backend_answer_once() {
    let store = Store::open("memory://", &S3Options::default()).unwrap();
    let e = store
        .get("tenants/u/reports/missing.json")
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("object store get failed: "),
        "{message}"
    );
    // object_store names the location twice itself; its innermost cause is said once.
    let cause = "No data in memory found";
    assert_eq!(count(&message, cause), 1, "{message}");
    assert_eq!(count(&chain(e), cause), 1);
}

#[test]
fn cluster_read_errors_carry_the_cause_once() {
    let cause = serde_json::from_str::<u32>("\"x\"").unwrap_err();
    let text = cause.to_string();
    let e = ReadError::Decode {
        kind: "pods",
        cause,
    };
    assert_eq!(e.to_string(), format!("decoding pods failed: {text}"));
    assert_eq!(count(&chain(e), &text), 1);
}

#[test]
fn cli_errors_name_the_step_then_the_parser_error_once() {
    let sanitize = sanitize_documents(b"{\"kind\": \"Pod\",", &Sanitizer::default()).unwrap_err();
    let printed = chain(sanitize);
    assert!(
        printed.starts_with("parsing JSON document 0 failed: "),
        "{printed}"
    );
    assert_eq!(count(&printed, "line 1 column"), 1, "{printed}");

    let prices = PriceTable::from_json(b"[1]").unwrap_err();
    let printed = chain(prices);
    assert!(
        printed.starts_with("prices file is not a valid price table: "),
        "{printed}"
    );
    assert_eq!(count(&printed, "line 1 column"), 1, "{printed}");
}
