use super::*;

fn selector(key: &str) -> MethodSelector {
    key.parse().expect("test selectors are valid")
}

#[test]
fn throttle_validation_names_the_field() {
    assert_eq!(
        ThrottleSettings::new(1.0, 0).unwrap_err().field,
        "burst_limit"
    );
    assert_eq!(
        ThrottleSettings::new(-1.0, 1).unwrap_err().field,
        "rate_limit"
    );
    assert_eq!(
        ThrottleSettings::new(0.0, 1).unwrap_err().field,
        "rate_limit"
    );
    assert_eq!(
        ThrottleSettings::new(f64::NAN, 1).unwrap_err().field,
        "rate_limit"
    );
    assert_eq!(
        ThrottleSettings::new(f64::INFINITY, 1).unwrap_err().field,
        "rate_limit"
    );
    let ok = ThrottleSettings::new(0.5, 3).expect("valid");
    assert_eq!(ok.emission_interval_nanos(), 2_000_000_000);
}

#[test]
fn serde_errors_name_the_field_and_its_path() {
    let cases = [
        (
            r#"{"id":"p","throttle":{"rate_limit":1,"burst_limit":0}}"#,
            "throttle",
            "burst_limit: must be at least 1",
        ),
        (
            r#"{"id":"p","throttle":{"rate_limit":1,"burst_limit":-3}}"#,
            "throttle",
            "burst_limit: must be between 1",
        ),
        (
            r#"{"id":"p","throttle":{"rate_limit":-2,"burst_limit":1}}"#,
            "throttle",
            "rate_limit: must be greater than zero",
        ),
        (
            r#"{"id":"p","quota":{"limit":0,"period":"DAY"}}"#,
            "quota",
            "limit: must be at least 1",
        ),
        (
            r#"{"id":"p","quota":{"limit":5,"period":"DAY","offset":6}}"#,
            "quota",
            "offset: must not exceed limit",
        ),
        (
            r#"{"id":"p","quota":{"limit":5,"period":"YEAR"}}"#,
            "quota.period",
            "unknown variant `YEAR`",
        ),
        (r#"{"id":""}"#, ".", "id: must not be empty"),
        (
            r#"{"id":"p","api_stages":[{"api_id":"a","stage":"s","throttle":{"pets/GET":{"rate_limit":1,"burst_limit":1}}}]}"#,
            "api_stages[0].throttle",
            "\"pets/GET\": a method key starts with `/`",
        ),
        (
            r#"{"id":"p","api_stages":[{"api_id":"a","stage":"s","throttle":{"/pets/get":{"rate_limit":1,"burst_limit":1}}}]}"#,
            "api_stages[0].throttle",
            "upper-case",
        ),
    ];
    for (json, path, message) in cases {
        let de = &mut serde_json::Deserializer::from_str(json);
        let err = serde_path_to_error::deserialize::<_, UsagePlan>(de)
            .expect_err("every case is invalid");
        assert!(
            err.path().to_string().starts_with(path),
            "{json}: path {} should start with {path}",
            err.path()
        );
        assert!(
            err.inner().to_string().contains(message),
            "{json}: `{}` should contain `{message}`",
            err.inner()
        );
    }
}

#[test]
fn aws_camel_case_plans_load() {
    let plan: UsagePlan = serde_json::from_str(
        r#"{"id":"abc123","name":"Basic","throttle":{"rateLimit":10.0,"burstLimit":20},
            "quota":{"limit":5000,"period":"MONTH","offset":0},
            "apiStages":[{"apiId":"a1","stage":"prod","throttle":{"//GET":{"rateLimit":1,"burstLimit":1}}}],
            "productCode":"ignored","tags":{}}"#,
    )
    .expect("an AWS-shaped plan loads");
    assert_eq!(plan.name(), Some("Basic"));
    assert_eq!(plan.throttle().expect("set").burst_limit().get(), 20);
    assert_eq!(plan.quota().expect("set").period(), QuotaPeriod::Month);
    let root = plan
        .throttle_for("a1", "prod", "GET", "/")
        .expect("root override");
    assert_eq!(root.rate_limit(), 1.0);
    assert!(plan.applies_to("a1", "prod"));
    assert!(!plan.applies_to("a1", "beta"));
}

#[test]
fn plans_round_trip() {
    let plan = UsagePlan::new("p")
        .expect("valid id")
        .with_name("n")
        .with_throttle(ThrottleSettings::new(2.5, 4).expect("valid"))
        .with_quota(QuotaSettings::with_offset(10, QuotaPeriod::Week, 2).expect("valid"))
        .with_api_stage(ApiStage {
            api_id: "a".into(),
            stage: "s".into(),
            throttle: [(
                selector("/pets/*"),
                ThrottleSettings::new(1.0, 1).expect("valid"),
            )]
            .into_iter()
            .collect(),
        });
    let json = serde_json::to_string(&plan).expect("serialises");
    let back: UsagePlan = serde_json::from_str(&json).expect("loads");
    assert_eq!(back, plan);
}

#[test]
fn selectors_parse_like_api_gateway() {
    let root = selector("//GET");
    assert_eq!((root.resource(), root.method()), ("/", "GET"));
    assert_eq!(root.to_string(), "//GET");
    let all = selector("/*/*");
    assert_eq!((all.resource(), all.method()), ("/*", "*"));
    let pets = selector("/pets/{petId}/DELETE");
    assert_eq!(pets.resource(), "/pets/{petId}");
    assert_eq!(pets.to_string(), "/pets/{petId}/DELETE");
    assert!("/pets/".parse::<MethodSelector>().is_err());
    assert!("pets/GET".parse::<MethodSelector>().is_err());
}

#[test]
fn selectors_match_paths_and_templates() {
    let cases = [
        ("/pets/GET", "GET", "/pets", true),
        ("/pets/GET", "get", "/pets", true),
        ("/pets/GET", "POST", "/pets", false),
        ("/pets/GET", "GET", "/pets/1", false),
        ("/pets/*", "PATCH", "/pets", true),
        ("/pets/{id}/GET", "GET", "/pets/7", true),
        ("/pets/{id}/GET", "GET", "/pets/{id}", true),
        ("/pets/{id}/GET", "GET", "/pets/7/toys", false),
        ("/files/{path+}/GET", "GET", "/files/a/b/c", true),
        ("//GET", "GET", "/", true),
        ("//GET", "GET", "/pets", false),
        ("/*/*", "PUT", "/anything/at/all", true),
    ];
    for (key, method, path, expected) in cases {
        assert_eq!(
            selector(key).matches(method, path),
            expected,
            "{key} vs {method} {path}"
        );
    }
}

#[test]
fn the_most_specific_override_wins() {
    let limits = |r| ThrottleSettings::new(r, 1).expect("valid");
    let plan = UsagePlan::new("p")
        .expect("valid")
        .with_throttle(limits(100.0))
        .with_api_stage(ApiStage {
            api_id: "a".into(),
            stage: "s".into(),
            throttle: [
                (selector("/*/*"), limits(1.0)),
                (selector("/pets/*"), limits(2.0)),
                (selector("/pets/GET"), limits(3.0)),
                (selector("/pets/{id}/GET"), limits(4.0)),
            ]
            .into_iter()
            .collect(),
        });
    let rate = |m, p| {
        plan.throttle_for("a", "s", m, p)
            .map(ThrottleSettings::rate_limit)
    };
    assert_eq!(rate("GET", "/pets"), Some(3.0));
    assert_eq!(rate("POST", "/pets"), Some(2.0));
    assert_eq!(rate("GET", "/pets/9"), Some(4.0));
    assert_eq!(rate("GET", "/owners"), Some(1.0));
    // Another stage sees only the plan-wide throttle.
    assert_eq!(
        plan.throttle_for("a", "other", "GET", "/pets")
            .map(ThrottleSettings::rate_limit),
        Some(100.0)
    );
}

#[test]
fn selectors_match_a_resource_by_equality() {
    let greedy = selector("/loyalty/{proxy+}/*");
    assert!(greedy.matches_resource("GET", "/loyalty/{proxy+}"));
    assert!(!greedy.matches_resource("GET", "/loyalty/{customerId}/get"));
    assert!(!greedy.matches_resource("GET", "/loyalty/C-1001/get"));
    // The same selector against paths: segment by segment.
    assert!(greedy.matches("GET", "/loyalty/C-1001/get"));
    let get = selector("/loyalty/{customerId}/get/GET");
    assert!(get.matches_resource("get", "/loyalty/{customerId}/get"));
    assert!(!get.matches_resource("POST", "/loyalty/{customerId}/get"));
    assert!(selector("/*/*").matches_resource("PATCH", "/loyalty/{proxy+}"));
    assert!(selector("//GET").matches_resource("GET", "/"));
    assert!(!selector("//GET").matches_resource("GET", "/loyalty/{proxy+}"));
    let plan = UsagePlan::new("p")
        .expect("a valid id")
        .with_api_stage(ApiStage {
            api_id: "a1b2c3d4e5".into(),
            stage: "prod".into(),
            throttle: [
                (
                    selector("/*/*"),
                    ThrottleSettings::new(1.0, 9).expect("valid"),
                ),
                (
                    selector("/loyalty/{proxy+}/*"),
                    ThrottleSettings::new(1.0, 1).expect("valid"),
                ),
            ]
            .into_iter()
            .collect(),
        });
    let found = |template: &str| {
        plan.resource_method_throttle("a1b2c3d4e5", "prod", "GET", template)
            .map(|(s, _)| s.to_string())
    };
    assert_eq!(
        found("/loyalty/{proxy+}").as_deref(),
        Some("/loyalty/{proxy+}/*")
    );
    assert_eq!(found("/loyalty/{customerId}/get").as_deref(), Some("/*/*"));
    assert_eq!(
        plan.resource_method_throttle("a1b2c3d4e5", "other", "GET", "/loyalty/{proxy+}"),
        None
    );
}
