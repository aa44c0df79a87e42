//! Criterion benches of policy evaluation (issue 8: 20 statements in at most 2 µs).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_iam::{Decision, ExecuteApiArn, PolicyDocument, RequestContext, evaluate};
use portcullis_test_support::cpu::ThreadCpuTime;
use time::OffsetDateTime;

/// Twenty statements of the kinds real API policies hold: literal and
/// wildcard resources, NotAction, and conditions on IP, time, transport and
/// user agent. The request matches only the last Allow, so every statement is
/// tried.
fn twenty_statements() -> PolicyDocument {
    let mut statements = Vec::new();
    for i in 0..8 {
        statements.push(format!(
            r#"{{"Sid":"Read{i}","Effect":"Allow","Action":"execute-api:Invoke",
               "Resource":"arn:aws:execute-api:us-east-1:123456789012:api{i}/prod/GET/items/*"}}"#
        ));
    }
    for i in 0..4 {
        statements.push(format!(
            r#"{{"Effect":"Deny","Action":"execute-api:Invoke",
               "Resource":"arn:aws:execute-api:*:*:abc123/*/DELETE/admin{i}/*"}}"#
        ));
    }
    statements.push(
        r#"{"Effect":"Deny","Action":"execute-api:*","Resource":"*",
            "Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}}"#
            .to_owned(),
    );
    statements.push(
        r#"{"Effect":"Deny","Action":"execute-api:*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#
            .to_owned(),
    );
    statements.push(
        r#"{"Effect":"Deny","Action":"execute-api:*","Resource":"*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#
            .to_owned(),
    );
    statements.push(
        r#"{"Effect":"Deny","Action":"execute-api:*","Resource":"*",
            "Condition":{"StringLike":{"aws:UserAgent":["*sqlmap*","*nikto*"]}}}"#
            .to_owned(),
    );
    statements
        .push(r#"{"Effect":"Deny","NotAction":"execute-api:Invoke","Resource":"*"}"#.to_owned());
    statements.push(
        r#"{"Effect":"Allow","Action":"execute-api:Invoke",
            "NotResource":"arn:aws:execute-api:*:*:*/*/*/internal/*",
            "Condition":{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/bob"}}}"#
            .to_owned(),
    );
    statements.push(
        r#"{"Effect":"Allow","Action":"execute-api:Invoke",
            "Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/pets"}"#
            .to_owned(),
    );
    statements.push(
        r#"{"Effect":"Allow","Action":"execute-api:Invoke",
            "Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/*",
            "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#
            .to_owned(),
    );
    assert_eq!(statements.len(), 20);
    let json = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    PolicyDocument::from_json(&json).expect("the bench policy is valid")
}

fn run<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let policies = vec![Arc::new(twenty_statements())];
    let arns = ExecuteApiArn::new("us-east-1", "123456789012", "abc123", "prod")
        .expect("valid ARN config");
    let resource = arns.resource("GET", "/pets/7/toys");
    let ip: IpAddr = "203.0.113.9".parse().expect("valid IP");
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let ctx = RequestContext::new("arn:aws:iam::123456789012:user/alice", resource.as_str())
        .with_source_ip(Some(ip))
        .with_current_time(now)
        .with_secure_transport(true)
        .with_user_agent("aws-sdk-rust/1.3 os/linux");
    assert_eq!(evaluate(&policies, None, &ctx), Decision::Allow);

    let mut group = c.benchmark_group(format!("iam_{clock}"));
    group.bench_function("evaluate_20_statements", |b| {
        b.iter(|| evaluate(black_box(&policies), None, black_box(&ctx)))
    });
    group.bench_function("arn_context_and_evaluate_20_statements", |b| {
        b.iter(|| {
            let resource = arns.resource(black_box("GET"), black_box("/pets/7/toys"));
            let ctx =
                RequestContext::new("arn:aws:iam::123456789012:user/alice", resource.as_str())
                    .with_source_ip(Some(ip))
                    .with_current_time(now)
                    .with_secure_transport(true)
                    .with_user_agent("aws-sdk-rust/1.3 os/linux");
            evaluate(black_box(&policies), None, &ctx)
        })
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    run(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    run(c, "cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
