//! Any bytes as a PyTorch checkpoint (zip + pickle) for `convert`: tensors or a typed error, and
//! every tensor's data readable or refused, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("dynrefer-fuzz-{}.pth", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(tensors) = dynrefer::convert::read::read_pth(&path) {
        for (_, t) in tensors.iter().take(64) {
            let _ = t.to_bytes();
        }
    }
});
