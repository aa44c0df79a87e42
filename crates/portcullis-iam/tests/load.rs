//! Loading policies: validation errors name the bad field; serde round trips.

use portcullis_iam::{ExecuteApiArn, MAX_POLICY_BYTES, PolicyDocument, PolicyDocumentError};

#[test]
fn invalid_documents_name_the_bad_field() {
    let cases: &[(&str, &str)] = &[
        (r#"[]"#, ""),
        (r#"{"Version":"2012-10-17"}"#, ""),
        (r#"{"Version":"2013-01-01","Statement":[]}"#, "Version"),
        (r#"{"Statement":[],"Extra":1}"#, "Extra"),
        (r#"{"Statement":"x"}"#, "Statement"),
        (
            r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#,
            "Statement[0]",
        ),
        (
            r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
            "Statement[0].Effect",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
            "Statement",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            "Statement[0]",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":["execute-api:Invoke","nope"],"Resource":"*"}]}"#,
            "Statement[0].Action[1]",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            "Statement[0].Action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":[1]}]}"#,
            "Statement[0].Resource[0]",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}]}"#,
            "Statement[0].NotAction",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Bogus":1}]}"#,
            "Statement[0].Bogus",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Alien":"x"},"Action":"*","Resource":"*"}]}"#,
            "Statement[0].Principal.Alien",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#,
            "Statement[0].Condition.StringEqualz",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","nope"]}}}]}"#,
            "Statement[0].Condition.IpAddress.aws:SourceIp[1]",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}]}"#,
            "Statement[0].Condition.DateLessThan.aws:CurrentTime",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"n":"ten"}}}]}"#,
            "Statement[0].Condition.NumericLessThan.n",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"b":"yes"}}}]}"#,
            "Statement[0].Condition.Bool.b",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"a":"not-an-arn"}}}]}"#,
            "Statement[0].Condition.ArnLike.a",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a":[]}}}]}"#,
            "Statement[0].Condition.StringEquals.a",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a":{"x":1}}}}]}"#,
            "Statement[0].Condition.StringEquals.a",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:Null":{"a":"true"}}}]}"#,
            "Statement[0].Condition.ForAnyValue:Null",
        ),
    ];
    for (json, path) in cases {
        match PolicyDocument::from_json(json) {
            Err(PolicyDocumentError::Invalid { path: got, message }) => {
                assert_eq!(got, *path, "{json}: {message}");
            }
            other => panic!("{json}: expected an invalid-policy error, got {other:?}"),
        }
    }
}

#[test]
fn size_limit_and_bad_json() {
    let huge = format!(
        r#"{{"Statement":[],"Id":"{}"}}"#,
        "x".repeat(MAX_POLICY_BYTES)
    );
    assert!(matches!(
        PolicyDocument::from_json(&huge),
        Err(PolicyDocumentError::TooLarge { .. })
    ));
    assert!(matches!(
        PolicyDocument::from_json_with_limit(r#"{"Statement":[]}"#, 4),
        Err(PolicyDocumentError::TooLarge { size: 16, limit: 4 })
    ));
    assert!(matches!(
        PolicyDocument::from_json(r#"{"Statement":"#),
        Err(PolicyDocumentError::Json(_))
    ));
}

#[test]
fn serde_reads_and_writes_iam_json() {
    #[derive(serde::Deserialize)]
    struct Config {
        policies: Vec<PolicyDocument>,
    }
    let config: Config = serde_json::from_str(
        r#"{"policies":[{"Version":"2012-10-17","Id":"p1","Statement":{"Sid":"A","Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}}]}"#,
    )
    .unwrap();
    let doc = &config.policies[0];
    assert_eq!(doc.version(), Some("2012-10-17"));
    assert_eq!(doc.id(), Some("p1"));
    assert_eq!(doc.statements()[0].sid(), Some("A"));
    let written = serde_json::to_string(doc).unwrap();
    let again: PolicyDocument = serde_json::from_str(&written).unwrap();
    assert_eq!(&again, doc);

    let err = serde_json::from_str::<Config>(
        r#"{"policies":[{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"x"}}}}]}"#,
    )
    .err()
    .expect("a bad policy fails to deserialize");
    assert!(
        err.to_string()
            .contains("Statement.Condition.IpAddress.aws:SourceIp"),
        "{err}"
    );
}

#[test]
fn execute_api_arns() {
    let arns = ExecuteApiArn::new("eu-west-1", "123456789012", "a1b2c3", "v1").unwrap();
    assert_eq!(
        arns.resource("GET", "/"),
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/v1/GET/"
    );
    assert_eq!(
        arns.resource("PUT", "pets/1"),
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/v1/PUT/pets/1"
    );
    let request = http::Request::delete("http://h/pets/%C3%A9?x=1")
        .body(())
        .unwrap();
    assert_eq!(
        arns.for_request(&request).unwrap(),
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/v1/DELETE/pets/é"
    );
    let request = http::Request::get("http://h/pets/a%2Fb").body(()).unwrap();
    assert!(arns.for_request(&request).is_err());
    let cn = arns.clone().with_partition("aws-cn").unwrap();
    assert!(cn.prefix().starts_with("arn:aws-cn:execute-api:"));

    let loaded: ExecuteApiArn = serde_json::from_str(
        r#"{"region":"eu-west-1","account_id":"123456789012","api_id":"a1b2c3","stage":"v1"}"#,
    )
    .unwrap();
    assert_eq!(loaded, arns);
    let bad = serde_json::from_str::<ExecuteApiArn>(
        r#"{"region":"eu-west-1","account_id":"123456789012","api_id":"a/b","stage":"v1"}"#,
    )
    .expect_err("a slash in the api id is refused");
    assert!(bad.to_string().contains("api_id"), "{bad}");
    assert!(ExecuteApiArn::new("", "1", "a", "s").is_err());
}
