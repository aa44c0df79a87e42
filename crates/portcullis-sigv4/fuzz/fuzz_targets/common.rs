use std::sync::Arc;

use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};

/// A layer at 2015-08-30T12:36:00Z that knows AKIDEXAMPLE.
pub fn layer() -> SigV4Layer {
    let provider = StaticCredentialProvider::new().with(Credential::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "arn:aws:iam::123456789012:user/fuzz",
    ));
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("valid ARN");
    SigV4Layer::new(api, provider)
        .clock(Arc::new(ManualClock::at_unix(1_440_938_160)))
        .debug_signatures(true)
}
