//! Table tests of policy evaluation: allow, deny, wildcards, NotAction,
//! NotResource, principals, and every condition operator.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_iam::{Decision, PolicyDocument, RequestContext, evaluate, evaluate_cross_account};
use time::macros::datetime;

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const PETS: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/7";

fn policy(statements: &str) -> PolicyDocument {
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}: {statements}"))
}

fn allow_if(condition: &str) -> PolicyDocument {
    policy(&format!(
        r#"{{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*","Condition":{condition}}}"#
    ))
}

fn ctx() -> RequestContext<'static> {
    RequestContext::new(ALICE, PETS)
        .with_source_ip(Some("203.0.113.9".parse::<IpAddr>().expect("valid IP")))
        .with_current_time(datetime!(2027-06-15 12:00:00 UTC))
        .with_secure_transport(true)
        .with_user_agent("aws-sdk-rust/1.3.0 os/linux")
}

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

#[test]
fn statements_table() {
    let cases: &[(&str, &str, Decision)] = &[
        (
            "literal allow",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/7"}"#,
            Allow,
        ),
        (
            "other resource",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/8"}"#,
            ImplicitDeny,
        ),
        ("no statement", "[]", ImplicitDeny),
        (
            "star crosses slash",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/*"}"#,
            Allow,
        ),
        (
            "star in middle",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:abc123/*/GET/pets/*"}"#,
            Allow,
        ),
        (
            "wrong method",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:abc123/*/POST/*"}"#,
            ImplicitDeny,
        ),
        (
            "question mark",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/?"}"#,
            Allow,
        ),
        (
            "question mark one char only",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pet?"}"#,
            ImplicitDeny,
        ),
        (
            "resource is case-sensitive",
            r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:ABC123/*"}"#,
            ImplicitDeny,
        ),
        (
            "action is case-insensitive",
            r#"{"Effect":"Allow","Action":"EXECUTE-API:invoke","Resource":"*"}"#,
            Allow,
        ),
        (
            "action wildcard",
            r#"{"Effect":"Allow","Action":"execute-api:*","Resource":"*"}"#,
            Allow,
        ),
        (
            "action star",
            r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#,
            Allow,
        ),
        (
            "other action",
            r#"{"Effect":"Allow","Action":"execute-api:ManageConnections","Resource":"*"}"#,
            ImplicitDeny,
        ),
        (
            "action list",
            r#"{"Effect":"Allow","Action":["s3:GetObject","execute-api:Invoke"],"Resource":["arn:x","*"]}"#,
            Allow,
        ),
        (
            "deny wins over allow",
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:abc123/*/GET/pets/*"}]"#,
            ExplicitDeny,
        ),
        (
            "deny first still wins",
            r#"[{"Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]"#,
            ExplicitDeny,
        ),
        (
            "deny alone",
            r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#,
            ExplicitDeny,
        ),
        (
            "non-matching deny",
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"arn:aws:execute-api:*:*:abc123/*/DELETE/*"}]"#,
            Allow,
        ),
        (
            "NotAction allow misses invoke",
            r#"{"Effect":"Allow","NotAction":"execute-api:Invoke","Resource":"*"}"#,
            ImplicitDeny,
        ),
        (
            "NotAction allow matches others",
            r#"{"Effect":"Allow","NotAction":"execute-api:ManageConnections","Resource":"*"}"#,
            Allow,
        ),
        (
            "NotAction deny",
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"execute-api:Invoke","Resource":"*"}]"#,
            Allow,
        ),
        (
            "NotResource allow",
            r#"{"Effect":"Allow","Action":"*","NotResource":"arn:aws:execute-api:*:*:abc123/*/DELETE/*"}"#,
            Allow,
        ),
        (
            "NotResource excludes",
            r#"{"Effect":"Allow","Action":"*","NotResource":["arn:aws:execute-api:*:*:abc123/prod/GET/*"]}"#,
            ImplicitDeny,
        ),
        (
            "NotResource deny everything else",
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","NotResource":"arn:aws:execute-api:*:*:abc123/prod/*"}]"#,
            Allow,
        ),
        (
            "NotResource deny hits",
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","NotResource":"arn:aws:execute-api:*:*:abc123/test/*"}]"#,
            ExplicitDeny,
        ),
        (
            "identity policies ignore Principal",
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:user/x"},"Action":"*","Resource":"*"}"#,
            Allow,
        ),
    ];
    for (name, statements, expected) in cases {
        let doc = policy(statements);
        assert_eq!(doc.evaluate(&ctx()), *expected, "{name}");
        assert_eq!(
            evaluate(&[Arc::new(doc)], None, &ctx()),
            *expected,
            "{name} via evaluate"
        );
    }
}

#[test]
fn condition_operators_table() {
    let cases: &[(&str, &str, Decision)] = &[
        // String.
        (
            "StringEquals",
            r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}"#,
            Allow,
        ),
        (
            "StringEquals miss",
            r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/Alice"}}"#,
            ImplicitDeny,
        ),
        (
            "StringEquals any of list",
            r#"{"StringEquals":{"aws:PrincipalArn":["x","arn:aws:iam::123456789012:user/alice"]}}"#,
            Allow,
        ),
        (
            "StringEquals key name case-insensitive",
            r#"{"StringEquals":{"AWS:principalarn":"arn:aws:iam::123456789012:user/alice"}}"#,
            Allow,
        ),
        (
            "StringNotEquals",
            r#"{"StringNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/bob"}}"#,
            Allow,
        ),
        (
            "StringNotEquals miss",
            r#"{"StringNotEquals":{"aws:PrincipalArn":["bob","arn:aws:iam::123456789012:user/alice"]}}"#,
            ImplicitDeny,
        ),
        (
            "StringEqualsIgnoreCase",
            r#"{"StringEqualsIgnoreCase":{"aws:PrincipalArn":"ARN:AWS:IAM::123456789012:USER/ALICE"}}"#,
            Allow,
        ),
        (
            "StringNotEqualsIgnoreCase",
            r#"{"StringNotEqualsIgnoreCase":{"aws:PrincipalArn":"ARN:AWS:IAM::123456789012:USER/ALICE"}}"#,
            ImplicitDeny,
        ),
        (
            "StringLike",
            r#"{"StringLike":{"aws:UserAgent":"aws-sdk-*"}}"#,
            Allow,
        ),
        (
            "StringLike miss",
            r#"{"StringLike":{"aws:UserAgent":"curl/*"}}"#,
            ImplicitDeny,
        ),
        (
            "StringNotLike",
            r#"{"StringNotLike":{"aws:UserAgent":["curl/*","*sqlmap*"]}}"#,
            Allow,
        ),
        (
            "StringNotLike miss",
            r#"{"StringNotLike":{"aws:UserAgent":"*linux*"}}"#,
            ImplicitDeny,
        ),
        // IP.
        (
            "IpAddress",
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            Allow,
        ),
        (
            "IpAddress single",
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}"#,
            Allow,
        ),
        (
            "IpAddress miss",
            r#"{"IpAddress":{"aws:SourceIp":["198.51.100.0/24","2001:db8::/32"]}}"#,
            ImplicitDeny,
        ),
        (
            "NotIpAddress",
            r#"{"NotIpAddress":{"aws:SourceIp":"198.51.100.0/24"}}"#,
            Allow,
        ),
        (
            "NotIpAddress miss",
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.0.0/8"}}"#,
            ImplicitDeny,
        ),
        // Dates.
        (
            "DateLessThan",
            r#"{"DateLessThan":{"aws:CurrentTime":"2027-06-15T12:00:01Z"}}"#,
            Allow,
        ),
        (
            "DateLessThan equal",
            r#"{"DateLessThan":{"aws:CurrentTime":"2027-06-15T12:00:00Z"}}"#,
            ImplicitDeny,
        ),
        (
            "DateLessThanEquals equal",
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"2027-06-15T12:00:00Z"}}"#,
            Allow,
        ),
        (
            "DateGreaterThan",
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2027-06-15"}}"#,
            Allow,
        ),
        (
            "DateGreaterThan miss",
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2027-06-16T00:00:00+02:00"}}"#,
            ImplicitDeny,
        ),
        (
            "DateGreaterThanEquals epoch",
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"1813060800"}}"#,
            Allow,
        ),
        (
            "DateEquals",
            r#"{"DateEquals":{"aws:CurrentTime":"2027-06-15T14:00:00+02:00"}}"#,
            Allow,
        ),
        (
            "DateNotEquals",
            r#"{"DateNotEquals":{"aws:CurrentTime":"2027-06-15T12:00:00Z"}}"#,
            ImplicitDeny,
        ),
        // Numbers.
        (
            "NumericLessThan epoch",
            r#"{"NumericLessThan":{"aws:EpochTime":1900000000}}"#,
            Allow,
        ),
        (
            "NumericGreaterThan epoch",
            r#"{"NumericGreaterThan":{"aws:EpochTime":"1900000000"}}"#,
            ImplicitDeny,
        ),
        (
            "NumericEquals",
            r#"{"NumericEquals":{"aws:EpochTime":1813060800}}"#,
            Allow,
        ),
        (
            "NumericNotEquals",
            r#"{"NumericNotEquals":{"aws:EpochTime":1813060800}}"#,
            ImplicitDeny,
        ),
        (
            "NumericLessThanEquals",
            r#"{"NumericLessThanEquals":{"aws:EpochTime":1813060800}}"#,
            Allow,
        ),
        (
            "NumericGreaterThanEquals",
            r#"{"NumericGreaterThanEquals":{"aws:EpochTime":1813060801}}"#,
            ImplicitDeny,
        ),
        // Bool.
        ("Bool", r#"{"Bool":{"aws:SecureTransport":"true"}}"#, Allow),
        (
            "Bool json bool",
            r#"{"Bool":{"aws:SecureTransport":true}}"#,
            Allow,
        ),
        (
            "Bool miss",
            r#"{"Bool":{"aws:SecureTransport":"false"}}"#,
            ImplicitDeny,
        ),
        // ARN.
        (
            "ArnLike",
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
            Allow,
        ),
        (
            "ArnLike fields",
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}"#,
            ImplicitDeny,
        ),
        (
            "ArnEquals",
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}"#,
            Allow,
        ),
        (
            "ArnNotLike",
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/*"}}"#,
            ImplicitDeny,
        ),
        // Null and absence.
        (
            "Null true on absent key",
            r#"{"Null":{"aws:SourceVpc":"true"}}"#,
            Allow,
        ),
        (
            "Null false on absent key",
            r#"{"Null":{"aws:SourceVpc":"false"}}"#,
            ImplicitDeny,
        ),
        (
            "Null false on present key",
            r#"{"Null":{"aws:SourceIp":"false"}}"#,
            Allow,
        ),
        (
            "absent key is false",
            r#"{"StringEquals":{"aws:SourceVpc":"vpc-1"}}"#,
            ImplicitDeny,
        ),
        (
            "absent key with negated op is true",
            r#"{"StringNotEquals":{"aws:SourceVpc":"vpc-1"}}"#,
            Allow,
        ),
        (
            "IfExists on absent key",
            r#"{"StringEqualsIfExists":{"aws:SourceVpc":"vpc-1"}}"#,
            Allow,
        ),
        (
            "IfExists on present key",
            r#"{"StringEqualsIfExists":{"aws:UserAgent":"curl"}}"#,
            ImplicitDeny,
        ),
        (
            "IpAddressIfExists present",
            r#"{"IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            Allow,
        ),
        (
            "NotIpAddressIfExists present",
            r#"{"NotIpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ImplicitDeny,
        ),
        (
            "DateLessThanIfExists absent",
            r#"{"DateLessThanIfExists":{"custom:expires":"2000-01-01"}}"#,
            Allow,
        ),
        (
            "BoolIfExists present",
            r#"{"BoolIfExists":{"aws:SecureTransport":"false"}}"#,
            ImplicitDeny,
        ),
        (
            "NumericLessThanIfExists absent",
            r#"{"NumericLessThanIfExists":{"custom:n":1}}"#,
            Allow,
        ),
        (
            "StringLikeIfExists present",
            r#"{"StringLikeIfExists":{"aws:UserAgent":"aws-*"}}"#,
            Allow,
        ),
        // Combination: operators and keys AND.
        (
            "two operators both hold",
            r#"{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            Allow,
        ),
        (
            "two operators one fails",
            r#"{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            ImplicitDeny,
        ),
        (
            "two keys one fails",
            r#"{"StringLike":{"aws:UserAgent":"aws-*","aws:PrincipalArn":"*:role/*"}}"#,
            ImplicitDeny,
        ),
    ];
    for (name, condition, expected) in cases {
        assert_eq!(allow_if(condition).evaluate(&ctx()), *expected, "{name}");
    }
}

#[test]
fn caller_supplied_and_multi_valued_keys() {
    let ctx = ctx()
        .with_value("aws:SourceVpc", "vpc-111")
        .with_values("custom:groups", ["admins", "ops"])
        .with_values("custom:none", Vec::<String>::new());
    let cases: &[(&str, &str, Decision)] = &[
        (
            "extra key",
            r#"{"StringEquals":{"aws:SourceVpc":"vpc-111"}}"#,
            Allow,
        ),
        (
            "ForAnyValue",
            r#"{"ForAnyValue:StringEquals":{"custom:groups":["ops","x"]}}"#,
            Allow,
        ),
        (
            "ForAnyValue miss",
            r#"{"ForAnyValue:StringEquals":{"custom:groups":["x"]}}"#,
            ImplicitDeny,
        ),
        (
            "ForAllValues",
            r#"{"ForAllValues:StringLike":{"custom:groups":["admins","op*"]}}"#,
            Allow,
        ),
        (
            "ForAllValues miss",
            r#"{"ForAllValues:StringEquals":{"custom:groups":["admins"]}}"#,
            ImplicitDeny,
        ),
        (
            "ForAllValues empty",
            r#"{"ForAllValues:StringEquals":{"custom:none":["admins"]}}"#,
            Allow,
        ),
        (
            "ForAllValues absent",
            r#"{"ForAllValues:StringEquals":{"custom:absent":["admins"]}}"#,
            Allow,
        ),
        (
            "ForAnyValue absent",
            r#"{"ForAnyValue:StringEquals":{"custom:absent":["admins"]}}"#,
            ImplicitDeny,
        ),
        (
            "ForAnyValue negated",
            r#"{"ForAnyValue:StringNotEquals":{"custom:groups":["admins"]}}"#,
            Allow,
        ),
        (
            "ForAllValues negated",
            r#"{"ForAllValues:StringNotEquals":{"custom:groups":["admins"]}}"#,
            ImplicitDeny,
        ),
        (
            "plain op on multi-valued key",
            r#"{"StringEquals":{"custom:groups":"ops"}}"#,
            Allow,
        ),
        (
            "negated op on multi-valued key",
            r#"{"StringNotEquals":{"custom:groups":"ops"}}"#,
            ImplicitDeny,
        ),
    ];
    for (name, condition, expected) in cases {
        assert_eq!(allow_if(condition).evaluate(&ctx), *expected, "{name}");
    }
}

#[test]
fn resource_policy_combination() {
    let identity_allow = Arc::new(policy(
        r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}"#,
    ));
    let resource_allow_alice = policy(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"execute-api:Invoke","Resource":"*"}"#,
    );
    let resource_allow_account = policy(
        r#"{"Effect":"Allow","Principal":{"AWS":["123456789012"]},"Action":"execute-api:Invoke","Resource":"*"}"#,
    );
    let resource_allow_root = policy(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"execute-api:Invoke","Resource":"*"}"#,
    );
    let resource_deny_ip = policy(
        r#"[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"},
            {"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"*",
             "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]"#,
    );
    let resource_no_principal =
        policy(r#"{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"*"}"#);
    let resource_not_principal = policy(
        r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}"#,
    );
    let resource_role = policy(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ops/Deployer"},"Action":"*","Resource":"*"}"#,
    );
    let bob = "arn:aws:iam::123456789012:user/bob";
    let other_account = "arn:aws:iam::999999999999:user/eve";
    let session = "arn:aws:sts::123456789012:assumed-role/Deployer/ci-42";
    let as_user = |p: &'static str| ctx().with_principal_arn(Some(p));

    let no_identity: &[Arc<PolicyDocument>] = &[];
    type Case<'a> = (
        &'a str,
        &'a [Arc<PolicyDocument>],
        Option<&'a PolicyDocument>,
        RequestContext<'static>,
        Decision,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "identity alone",
            std::slice::from_ref(&identity_allow),
            None,
            ctx(),
            Allow,
        ),
        (
            "resource alone names alice",
            no_identity,
            Some(&resource_allow_alice),
            ctx(),
            Allow,
        ),
        (
            "resource alone, bob not named",
            no_identity,
            Some(&resource_allow_alice),
            as_user(bob),
            ImplicitDeny,
        ),
        (
            "either allows",
            std::slice::from_ref(&identity_allow),
            Some(&resource_allow_alice),
            as_user(bob),
            Allow,
        ),
        (
            "account id principal",
            no_identity,
            Some(&resource_allow_account),
            as_user(bob),
            Allow,
        ),
        (
            "account root principal",
            no_identity,
            Some(&resource_allow_root),
            as_user(bob),
            Allow,
        ),
        (
            "other account",
            no_identity,
            Some(&resource_allow_account),
            as_user(other_account),
            ImplicitDeny,
        ),
        (
            "resource deny beats identity allow",
            std::slice::from_ref(&identity_allow),
            Some(&resource_deny_ip),
            ctx(),
            ExplicitDeny,
        ),
        (
            "star principal allows anonymous",
            no_identity,
            Some(&resource_deny_ip),
            RequestContext::anonymous(PETS).with_source_ip(Some("10.1.2.3".parse().unwrap())),
            Allow,
        ),
        (
            "statement with no principal applies to no one",
            std::slice::from_ref(&identity_allow),
            Some(&resource_no_principal),
            ctx(),
            Allow,
        ),
        (
            "NotPrincipal spares alice",
            std::slice::from_ref(&identity_allow),
            Some(&resource_not_principal),
            ctx(),
            Allow,
        ),
        (
            "NotPrincipal denies bob",
            std::slice::from_ref(&identity_allow),
            Some(&resource_not_principal),
            as_user(bob),
            ExplicitDeny,
        ),
        (
            "NotPrincipal denies anonymous",
            no_identity,
            Some(&resource_not_principal),
            RequestContext::anonymous(PETS),
            ExplicitDeny,
        ),
        (
            "role names its sessions",
            no_identity,
            Some(&resource_role),
            as_user(session),
            Allow,
        ),
        (
            "role does not name other roles' sessions",
            no_identity,
            Some(&resource_role),
            as_user("arn:aws:sts::123456789012:assumed-role/Other/ci"),
            ImplicitDeny,
        ),
        (
            "anonymous with identity policies only",
            std::slice::from_ref(&identity_allow),
            None,
            RequestContext::anonymous(PETS),
            Allow,
        ),
    ];
    for (name, identity, resource, ctx, expected) in cases {
        assert_eq!(evaluate(identity, resource, &ctx), expected, "{name}");
    }

    // Across accounts both must allow.
    let eve = ctx().with_principal_arn(Some(other_account));
    let eve_named = policy(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:user/eve"},"Action":"*","Resource":"*"}"#,
    );
    assert_eq!(
        evaluate_cross_account(std::slice::from_ref(&identity_allow), &eve_named, &eve),
        Allow
    );
    assert_eq!(
        evaluate_cross_account(no_identity, &eve_named, &eve),
        ImplicitDeny
    );
    assert_eq!(
        evaluate_cross_account(
            std::slice::from_ref(&identity_allow),
            &resource_allow_alice,
            &eve
        ),
        ImplicitDeny
    );
    assert_eq!(
        evaluate_cross_account(
            std::slice::from_ref(&identity_allow),
            &resource_deny_ip,
            &eve
        ),
        ExplicitDeny
    );
}

#[test]
fn gateway_response_messages() {
    let resource = PETS;
    let deny = Decision::ExplicitDeny
        .into_gateway_response(ALICE, resource)
        .expect("deny refuses");
    let rendered = deny.render(&http::Request::new(()));
    assert_eq!(rendered.status(), 403);
    assert_eq!(
        rendered.headers()["x-amzn-errortype"],
        "AccessDeniedException"
    );
    let body: serde_json::Value = serde_json::from_slice(rendered.body()).unwrap();
    assert_eq!(
        body["message"],
        format!(
            "User: {ALICE} is not authorized to perform: execute-api:Invoke on resource: {resource} with an explicit deny"
        )
    );
    let implicit = Decision::ImplicitDeny
        .into_gateway_response(ALICE, resource)
        .expect("implicit deny refuses");
    assert!(!implicit.message().contains("explicit"));
    assert!(implicit.message().ends_with(resource));
    assert!(
        Decision::Allow
            .into_gateway_response(ALICE, resource)
            .is_none()
    );
}
