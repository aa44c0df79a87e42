//! What AppSync's directives cost per query: the same code-first schema and
//! queries executed bare and with the `AppSyncDirectives` extension (an API
//! key caller): 31 fields all allowed, and 51 fields of which 20 are denied.
//!
//! `cargo bench -p portcullis-graphql --bench directives`

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_graphql::{AppSyncDirectives, AuthMode, AuthPolicy, RequestAuth, Rules};

#[derive(SimpleObject, Clone)]
struct Flight {
    id: String,
    departure: String,
    arrival: String,
    price: i32,
    seats: i32,
}

struct Query;

#[Object]
impl Query {
    async fn flights(&self) -> Vec<Flight> {
        (0..10)
            .map(|i| Flight {
                id: format!("FL-{i}"),
                departure: "LGW".into(),
                arrival: "MAD".into(),
                price: 100 + i,
                seats: 3 * i,
            })
            .collect()
    }
}

/// `flights` and ten flights of five fields: 51 fields, of which the API key
/// may not read the 20 `price` and `seats` (null, with 20 errors).
const QUERY: &str = "{ flights { id departure arrival price seats } }";

/// `flights` and ten flights of three fields: 31 fields, all allowed.
const ALLOWED: &str = "{ flights { id departure arrival } }";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let bare = Schema::new(Query, EmptyMutation, EmptySubscription);
    let key = Rules::new().allow(AuthMode::ApiKey);
    let policy = AuthPolicy::new(AuthMode::AmazonCognitoUserPools)
        .field_rules("Query", "flights", key.clone())
        .type_rules("Flight", key.clone())
        .field_rules("Flight", "price", Rules::new().allow(AuthMode::AwsIam))
        .field_rules("Flight", "seats", Rules::new().allow(AuthMode::AwsIam));
    let guarded = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(AppSyncDirectives::new(policy))
        .finish();
    let mut group = c.benchmark_group("graphql");
    for (name, query) in [("31_fields", ALLOWED), ("51_fields", QUERY)] {
        group.bench_function(format!("{name}/bare"), |b| {
            b.to_async(&runtime).iter(|| bare.execute(query))
        });
        group.bench_function(format!("{name}/directives"), |b| {
            b.to_async(&runtime).iter(|| {
                guarded.execute(
                    async_graphql::Request::new(query).data(RequestAuth::new(AuthMode::ApiKey)),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
