//! Every text transformation, alone and chained (the first bytes pick the
//! chain), on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::transform::{TransformKind, apply_chain};

fuzz_target!(|data: &[u8]| {
    let Some((&picks, rest)) = data.split_first() else {
        return;
    };
    let (chain_bytes, input) = rest.split_at(rest.len().min(usize::from(picks % 4)));
    let chain: Vec<TransformKind> = chain_bytes
        .iter()
        .map(|b| TransformKind::ALL[usize::from(*b) % TransformKind::ALL.len()])
        .collect();
    let _ = apply_chain(&chain, input);
    for kind in TransformKind::ALL {
        let _ = kind.apply(input);
    }
});
