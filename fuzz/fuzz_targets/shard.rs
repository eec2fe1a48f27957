//! Any bytes as the built-in model's shard, as a burnpack or a safetensors file, under a manifest
//! whose size and hash agree with them (as an attacker's would): loaded or refused, never a panic.
//! The first byte picks the format.

#![no_main]

use std::sync::OnceLock;

use burn::tensor::Device;
use dynrefer::bundle::{Loader, Manifest, sha256_hex};
use libfuzzer_sys::fuzz_target;

fn builtin() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let bytes = include_bytes!("../../www/model/manifest.json");
        Manifest::parse("built-in", bytes).expect("the built-in manifest parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&format, shard)) = data.split_first() else { return };
    let mut manifest = builtin().clone();
    let entry = &mut manifest.shards[0];
    entry.file = if format & 1 == 0 { "weights-00000.bpk" } else { "weights-00000.safetensors" }.into();
    entry.bytes = shard.len() as u64;
    entry.sha256 = sha256_hex(shard);
    let verified = Manifest::verify("fuzz", entry, shard.to_vec()).expect("its own size and hash");
    let mut loader = Loader::new("fuzz", manifest, &Device::flex()).expect("the built-in model's count");
    if loader.add_shard(0, verified).is_ok() {
        let _ = loader.finish();
    }
});
