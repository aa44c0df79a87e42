use std::collections::BTreeMap;

use portcullis_core::context::{AuthMethod, Caller};

use super::*;
use crate::mode::AuthMode;

const SDL: &str = r#"
    type Query @aws_iam {
        searchFlights(from: String!, to: String!): [Flight] @aws_api_key @aws_cognito_user_pools
        getLoyalty(customerId: ID!): Loyalty @aws_cognito_user_pools
        listBookings: [Booking] @aws_cognito_user_pools(cognito_groups: ["Admin"])
        legacy: String @aws_auth(cognito_groups: ["Admin", "Ops"])
        inherited: String
    }
    type Flight @aws_api_key @aws_cognito_user_pools { id: ID! price: Int @aws_iam }
    type Loyalty { points: Int }
    type Booking @aws_cognito_user_pools(cognito_groups: ["Admin"]) { id: ID! }
    type Open { plain: String }
    extend type Query { extra: String @aws_oidc @aws_lambda }
"#;

fn user(groups: &[&str]) -> RequestAuth {
    RequestAuth::new(AuthMode::AmazonCognitoUserPools)
        .with_caller(Caller::new("alice", AuthMethod::Jwt).with_groups(groups.iter().copied()))
}

fn policy() -> AuthPolicy {
    AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, SDL).expect("the SDL parses")
}

#[test]
fn field_directives_override_the_types() {
    let p = policy();
    let iam = RequestAuth::new(AuthMode::AwsIam);
    // Query is @aws_iam, but each of these fields names its own modes.
    assert!(!p.allows("Query", "searchFlights", &iam));
    assert!(!p.allows("Query", "getLoyalty", &iam));
    // A field without directives inherits the type's.
    assert!(p.allows("Query", "inherited", &iam));
    assert!(!p.allows("Query", "inherited", &user(&[])));
    assert_eq!(p.effective_rules("Query", "inherited").1, Source::Type);
    // And a field's own directive wins over its type's the other way too.
    assert!(p.allows("Flight", "price", &iam));
    assert!(!p.allows("Flight", "price", &RequestAuth::new(AuthMode::ApiKey)));
    assert!(p.allows("Flight", "id", &RequestAuth::new(AuthMode::ApiKey)));
    assert_eq!(p.effective_rules("Flight", "price").1, Source::Field);
}

#[test]
fn no_directive_means_the_default_mode_only() {
    let p = policy();
    assert!(p.allows("Loyalty", "points", &user(&[])));
    assert!(!p.allows("Loyalty", "points", &RequestAuth::new(AuthMode::ApiKey)));
    assert!(!p.allows("Open", "plain", &RequestAuth::new(AuthMode::AwsIam)));
    assert_eq!(p.effective_rules("Open", "plain").1, Source::DefaultMode);
    // Once a directive names modes, the default is not implied.
    let iam_default = AuthPolicy::from_sdl(
        AuthMode::AwsIam,
        "type Query { a: String @aws_api_key b: String }",
    )
    .expect("parses");
    let iam = RequestAuth::new(AuthMode::AwsIam);
    assert!(!iam_default.allows("Query", "a", &iam));
    assert!(iam_default.allows("Query", "b", &iam));
}

#[test]
fn groups_must_intersect() {
    let p = policy();
    assert!(p.allows("Query", "listBookings", &user(&["Admin"])));
    assert!(p.allows("Query", "listBookings", &user(&["Staff", "Admin"])));
    assert!(!p.allows("Query", "listBookings", &user(&["Staff"])));
    assert!(!p.allows("Query", "listBookings", &user(&[])));
    assert!(p.allows("Query", "legacy", &user(&["Ops"])));
    assert!(!p.allows("Query", "legacy", &user(&["Staff"])));
    // Type-level groups apply to the type's fields.
    assert!(p.allows("Booking", "id", &user(&["Admin"])));
    assert!(!p.allows("Booking", "id", &user(&["Staff"])));
    // Groups only constrain user-pool callers; other modes must be named.
    assert!(!p.allows("Query", "listBookings", &RequestAuth::new(AuthMode::ApiKey)));
}

#[test]
fn groups_fall_back_to_the_claim() {
    let mut claims = BTreeMap::new();
    claims.insert("cognito:groups".to_owned(), serde_json::json!(["Admin"]));
    let auth = RequestAuth::new(AuthMode::AmazonCognitoUserPools)
        .with_caller(Caller::new("bob", AuthMethod::Jwt).with_claims(claims));
    assert!(policy().allows("Query", "listBookings", &auth));
}

#[test]
fn extensions_and_other_modes() {
    let p = policy();
    assert!(p.allows("Query", "extra", &RequestAuth::new(AuthMode::OpenidConnect)));
    assert!(p.allows("Query", "extra", &RequestAuth::new(AuthMode::AwsLambda)));
    assert!(!p.allows("Query", "extra", &user(&[])));
}

#[test]
fn bad_schemas_fail_at_load_time() {
    let bad_groups = AuthPolicy::from_sdl(
        AuthMode::AmazonCognitoUserPools,
        "type Query { a: String @aws_cognito_user_pools(cognito_groups: [1]) }",
    );
    let bad_groups = bad_groups.expect_err("groups of numbers");
    assert_eq!(
        bad_groups.path(),
        "Query.a.@aws_cognito_user_pools.cognito_groups"
    );
    assert_eq!(bad_groups.message(), "must be a list of strings");
    let aws_auth = AuthPolicy::from_sdl(
        AuthMode::ApiKey,
        r#"type Query { a: String @aws_auth(cognito_groups: ["A"]) }"#,
    );
    let aws_auth = aws_auth.expect_err("@aws_auth without user pools");
    assert_eq!(aws_auth.path(), "Query.a.@aws_auth");
    assert!(
        aws_auth
            .message()
            .starts_with("works only when AMAZON_COGNITO_USER_POOLS is the default mode"),
        "{aws_auth}"
    );
    let parse = AuthPolicy::from_sdl(AuthMode::ApiKey, "type Query {").expect_err("no parse");
    assert_eq!(parse.path(), "");
    assert!(
        parse.message().starts_with("the schema does not parse: "),
        "{parse}"
    );
    let nested = AuthPolicy::from_sdl(
        AuthMode::AmazonCognitoUserPools,
        r#"type Query { a: A } type A { b: String @aws_auth(cognito_groups: ["X"]) }"#,
    );
    let nested = nested.expect_err("@aws_auth off the root types");
    assert_eq!(nested.path(), "A.b.@aws_auth");
    assert_eq!(
        nested.message(),
        "works only on the fields of the query, mutation and subscription types"
    );
    // A renamed root is a root.
    let renamed = AuthPolicy::from_sdl(
        AuthMode::AmazonCognitoUserPools,
        r#"schema { query: Root } type Root { b: String @aws_auth(cognito_groups: ["X"]) }"#,
    )
    .expect("a root field");
    assert!(
        renamed
            .effective_rules("Root", "b")
            .0
            .names(AuthMode::AmazonCognitoUserPools)
    );
}

#[test]
fn code_first_matches_sdl() {
    let built = AuthPolicy::new(AuthMode::AmazonCognitoUserPools)
        .field_rules(
            "Query",
            "listBookings",
            Rules::new().allow_groups(["Admin"]),
        )
        .type_rules("Flight", Rules::new().allow(AuthMode::ApiKey));
    assert!(built.allows("Query", "listBookings", &user(&["Admin"])));
    assert!(!built.allows("Query", "listBookings", &user(&["Staff"])));
    assert!(built.allows("Flight", "id", &RequestAuth::new(AuthMode::ApiKey)));
    assert!(built.allows("Query", "other", &user(&[])));
}
