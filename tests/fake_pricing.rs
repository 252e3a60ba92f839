//! The Price List side of `FakeAws` against the real adapter (as tests/fake_aws.rs does for
//! the customer calls): `SdkFactory::operator_pricing` against the shim's fake
//! GetProducts (`tests/harness/moto_shim.py`) and `FakeAws::pricing` seeded with the same
//! prices give the same prices and tell the audit observer the same service, operation,
//! target and outcome, on success and on a throttled call.

mod support;

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use crossguard::aws::Pricing;
use crossguard::aws::price_list::PriceListOs;
use crossguard::aws::sdk::SdkFactory;
use crossguard::clock::SystemClock;
use crossguard::metrics::Metrics;
use crossguard::testing::aws::FakeAws;
use serde_json::json;
use support::{Moto, Recorder, http_request};

async fn script(pricing: &dyn Pricing, heard: &Recorder) -> Vec<String> {
    let mut out = Vec::new();
    for (region, os) in [
        ("eu-west-1", PriceListOs::Linux),
        ("eu-west-1", PriceListOs::Windows),
        ("sa-east-1", PriceListOs::Linux),
    ] {
        out.push(match pricing.on_demand_prices(region, os, heard).await {
            Ok(list) => format!("{:?}", list.hourly_usd),
            Err(e) => format!("error {:?}", e.kind),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_price_list_answers_and_reports_as_the_sdk_adapter_does() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    // One page per query, as the fake answers.
    http_request(
        &moto.url,
        "POST",
        "/_crossguard/price-list",
        &json!({"page_size": 100}).to_string(),
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let sdk =
        SdkFactory::from_config(config, Arc::new(Metrics::new())).operator_pricing("us-east-1");

    let aws = FakeAws::new(Arc::new(SystemClock));
    for (os, t, usd) in [
        ("linux", "m5.large", 0.107),
        ("linux", "m5.xlarge", 0.214),
        ("linux", "t3.large", 0.0912),
        ("windows", "m5.large", 0.199),
        ("windows", "m5.xlarge", 0.398),
    ] {
        aws.put_on_demand_price("eu-west-1", os, t, usd);
    }
    let fake = aws.pricing();

    let heard_sdk = Recorder::default();
    let sdk_said = script(sdk.as_ref(), &heard_sdk).await;
    let heard_fake = Recorder::default();
    let fake_said = script(fake.as_ref(), &heard_fake).await;
    assert_eq!(fake_said, sdk_said);
    assert!(sdk_said[0].contains("\"t3.large\": 0.0912"), "{sdk_said:?}");
    assert_eq!(
        sdk_said[2], "{}",
        "a region without products is an empty list"
    );

    // Throttled until the SDK's retries give up: one report of the final outcome.
    moto.fault(
        json!({"action": "GetProducts", "status": 400, "code": "ThrottlingException", "count": 10}),
    );
    aws.fail(
        "GetProducts",
        crossguard::aws::AwsErrorKind::Throttled,
        usize::MAX,
    );
    let throttled_sdk = sdk
        .on_demand_prices("eu-west-1", PriceListOs::Linux, &heard_sdk)
        .await
        .unwrap_err();
    let throttled_fake = fake
        .on_demand_prices("eu-west-1", PriceListOs::Linux, &heard_fake)
        .await
        .unwrap_err();
    assert_eq!(throttled_fake.kind, throttled_sdk.kind);

    let heard_sdk = heard_sdk.0.lock().unwrap().clone();
    let heard_fake = heard_fake.0.lock().unwrap().clone();
    assert_eq!(heard_fake, heard_sdk);
    assert_eq!(
        heard_sdk.last().unwrap(),
        &(
            "pricing".to_string(),
            "GetProducts".to_string(),
            "eu-west-1/Linux".to_string(),
            "throttled".to_string(),
            false,
            true
        )
    );
    assert_eq!(heard_sdk.len(), 4);
}
