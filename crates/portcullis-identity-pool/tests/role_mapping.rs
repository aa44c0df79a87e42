//! Rules-based role mapping at the public surface: a pool with one rule, an
//! ID token with the claim under test, the exchange, and the role the SigV4
//! layer then sees in the caller's principal. `MatchType`'s documentation
//! gives the semantics and their sources.

mod common;

use common::*;
use http::StatusCode;
use portcullis_identity_pool::{AmbiguousRoleResolution, MatchType, RoleMappingRule};
use serde_json::{Value, json};

const ADMIN: &str = "LoyaltyAdmin";
const MEMBER: &str = "LoyaltyUser";

/// The role a user with `claims` gets from a pool whose only rule is
/// `claim match_type value → LoyaltyAdmin` (unmatched users get the
/// authenticated role, `LoyaltyUser`).
async fn role_for(claims: Value, claim: &str, match_type: MatchType, value: &str) -> String {
    let clock = clock();
    let mut config = config();
    config.role_mappings = vec![RoleMappingRule {
        claim: claim.into(),
        match_type,
        value: value.into(),
        role: ADMIN.into(),
    }];
    config.ambiguous_role_resolution = AmbiguousRoleResolution::AuthenticatedRole;
    let pool = pool(config, &clock);
    let (status, answer) = sign_in(&pool, &id_token_with("ann", &claims, NOW)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let identity = answer["IdentityId"]
        .as_str()
        .expect("IdentityId")
        .to_owned();
    let creds = TempCreds::from_answer(&answer);
    // Both roles may GET /loyalty/*: the principal names the role picked.
    let request = signed_with(&creds, "/loyalty/C123/get", NOW);
    let (status, error, principal) = call(pool.provider(), &clock, request).await;
    assert_eq!(status, StatusCode::OK, "{error}: {principal}");
    let prefix = format!("arn:aws:sts::{ACCOUNT}:assumed-role/");
    let role = principal
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(&format!("/{identity}")))
        .unwrap_or_else(|| panic!("unexpected principal {principal}"));
    role.to_owned()
}

/// `(claims, claim, match type, value, expected role)`.
type Case = (Value, &'static str, MatchType, &'static str, &'static str);

async fn check(cases: Vec<Case>) {
    for (claims, claim, match_type, value, expected) in cases {
        let role = role_for(claims.clone(), claim, match_type, value).await;
        assert_eq!(
            role, expected,
            "{claim} {match_type:?} {value:?} on {claims} picked {role}"
        );
    }
}

const GROUPS: &str = "cognito:groups";

#[tokio::test]
async fn array_claims_match_by_membership_with_every_match_type() {
    use MatchType::*;
    let groups = || json!({GROUPS: ["Staff", "loyalty-admins"]});
    check(vec![
        (groups(), GROUPS, Equals, "loyalty-admins", ADMIN),
        (groups(), GROUPS, Equals, "loyalty-admin", MEMBER),
        (groups(), GROUPS, Contains, "loyalty-admins", ADMIN),
        (groups(), GROUPS, Contains, "Staff", ADMIN),
        // Membership, not a substring of an element or of the list's text.
        (groups(), GROUPS, Contains, "loyalty-admin", MEMBER),
        (groups(), GROUPS, Contains, "admins", MEMBER),
        (groups(), GROUPS, Contains, "Staff\",\"loyalty", MEMBER),
        (groups(), GROUPS, Contains, "staff", MEMBER),
        (groups(), GROUPS, StartsWith, "loyalty-", ADMIN),
        (groups(), GROUPS, StartsWith, "admins", MEMBER),
        (groups(), GROUPS, NotEqual, "Pilots", ADMIN),
        (groups(), GROUPS, NotEqual, "Staff", MEMBER),
    ])
    .await;
}

#[tokio::test]
async fn a_string_claim_is_one_value_and_contains_is_never_a_substring_test() {
    use MatchType::*;
    let wrapped = || json!({GROUPS: "xloyalty-adminsx"});
    let exact = || json!({GROUPS: "loyalty-admins"});
    let listed = || json!({GROUPS: "Staff,loyalty-admins"});
    check(vec![
        // The finding: a string that merely includes the group's name.
        (wrapped(), GROUPS, Contains, "loyalty-admins", MEMBER),
        (wrapped(), GROUPS, Equals, "loyalty-admins", MEMBER),
        (wrapped(), GROUPS, StartsWith, "loyalty-", MEMBER),
        (wrapped(), GROUPS, NotEqual, "loyalty-admins", ADMIN),
        (wrapped(), GROUPS, Contains, "xloyalty-adminsx", ADMIN),
        (wrapped(), GROUPS, StartsWith, "xloyalty", ADMIN),
        (exact(), GROUPS, Contains, "loyalty-admins", ADMIN),
        (exact(), GROUPS, Equals, "loyalty-admins", ADMIN),
        (exact(), GROUPS, StartsWith, "loyalty-admins", ADMIN),
        (exact(), GROUPS, NotEqual, "loyalty-admins", MEMBER),
        // A list in a string is not split.
        (listed(), GROUPS, Contains, "loyalty-admins", MEMBER),
        // Other string claims: the same rules.
        (
            json!({"email": "ann@example.com"}),
            "email",
            Contains,
            "@example.com",
            MEMBER,
        ),
        (
            json!({"email": "ann@example.com"}),
            "email",
            Equals,
            "ann@example.com",
            ADMIN,
        ),
        (
            json!({"custom:dept": "Sales"}),
            "custom:dept",
            StartsWith,
            "Sal",
            ADMIN,
        ),
    ])
    .await;
}

#[tokio::test]
async fn numbers_and_booleans_compare_as_their_json_text() {
    use MatchType::*;
    check(vec![
        (json!({"custom:tier": 3}), "custom:tier", Equals, "3", ADMIN),
        (
            json!({"custom:tier": 3}),
            "custom:tier",
            NotEqual,
            "3",
            MEMBER,
        ),
        (
            json!({"custom:tier": 30}),
            "custom:tier",
            Contains,
            "3",
            MEMBER,
        ),
        (
            json!({"custom:vip": true}),
            "custom:vip",
            Equals,
            "true",
            ADMIN,
        ),
        (
            json!({"custom:vip": false}),
            "custom:vip",
            Equals,
            "true",
            MEMBER,
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_missing_or_empty_claim_matches_nothing_not_even_not_equal() {
    use MatchType::*;
    let none = || json!({});
    let empty = || json!({GROUPS: []});
    let object = || json!({"custom:dept": {"name": "Sales"}});
    check(vec![
        (none(), GROUPS, NotEqual, "loyalty-admins", MEMBER),
        (none(), GROUPS, Contains, "loyalty-admins", MEMBER),
        (empty(), GROUPS, NotEqual, "loyalty-admins", MEMBER),
        (empty(), GROUPS, StartsWith, "", MEMBER),
        (object(), "custom:dept", NotEqual, "Sales", MEMBER),
    ])
    .await;
}
