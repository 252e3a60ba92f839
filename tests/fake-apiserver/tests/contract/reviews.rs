//! TokenReview and SubjectAccessReview: answered from the table the test sets, like
//! kube-apiserver's authenticators and RBAC authorizer would for those tokens and grants.

use fake_apiserver::{Grant, Reviews, TokenEntry};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::common::setup;

fn table() -> Reviews {
    Reviews {
        tokens: vec![TokenEntry {
            token: "alice-token".into(),
            username: "alice".into(),
            groups: vec!["team-a".into(), "system:authenticated".into()],
        }],
        grants: vec![
            Grant::new(
                "alice",
                Some("a"),
                &["get", "list"],
                "crossguard.dev",
                &["managedclusters"],
            ),
            Grant::new("group:auditors", None, &["*"], "*", &["*"]),
        ],
    }
}

async fn token_review(client: &kube::Client, token: &str) -> TokenReview {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("create TokenReview")
}

async fn allowed(
    client: &kube::Client,
    user: &str,
    groups: &[&str],
    namespace: &str,
    verb: &str,
    resource: &str,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some(verb.into()),
                group: Some("crossguard.dev".into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answered = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("create SubjectAccessReview");
    answered.status.expect("status").allowed
}

#[tokio::test]
async fn token_review_authenticates_only_tokens_of_the_table() {
    let ctx = setup().await;
    // Before a table is set, no token is valid.
    let before = token_review(&ctx.client, "alice-token").await;
    assert_ne!(before.status.and_then(|s| s.authenticated), Some(true));

    ctx.server.set_reviews(table());
    let known = token_review(&ctx.client, "alice-token").await;
    let status = known.status.expect("status");
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert_eq!(
        user.groups,
        Some(vec![
            "team-a".to_string(),
            "system:authenticated".to_string()
        ])
    );

    let unknown = token_review(&ctx.client, "mallory-token").await;
    let status = unknown.status.expect("status");
    assert_ne!(status.authenticated, Some(true));
    assert!(status.user.and_then(|u| u.username).is_none());
}

#[tokio::test]
async fn subject_access_review_follows_the_grants() {
    let ctx = setup().await;
    ctx.server.set_reviews(table());
    let c = &ctx.client;
    assert!(allowed(c, "alice", &["team-a"], "a", "get", "managedclusters").await);
    assert!(!allowed(c, "alice", &["team-a"], "b", "get", "managedclusters").await);
    assert!(!allowed(c, "alice", &["team-a"], "a", "delete", "managedclusters").await);
    assert!(!allowed(c, "alice", &["team-a"], "a", "get", "customeraccounts").await);
    assert!(!allowed(c, "bob", &[], "a", "get", "managedclusters").await);
    // A cluster-wide grant to a group covers every namespace for its members.
    assert!(allowed(c, "carol", &["auditors"], "b", "get", "customeraccounts").await);
}

#[tokio::test]
async fn reviews_are_create_only_and_validated() {
    let ctx = setup().await;
    let get = ctx.get("/apis/authentication.k8s.io/v1/tokenreviews").await;
    assert_eq!(get.status, 405);
    let no_token = ctx
        .post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}),
        )
        .await;
    assert_eq!(no_token.status, 422, "{}", no_token.body);
    let no_attributes = ctx
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": "alice"}
            }),
        )
        .await;
    assert_eq!(no_attributes.status, 422, "{}", no_attributes.body);
    // Nothing is stored: a review is not a resource one can list.
    assert!(
        ctx.server
            .list_objects("authentication.k8s.io/v1", "tokenreviews", None)
            .is_empty()
    );
}
