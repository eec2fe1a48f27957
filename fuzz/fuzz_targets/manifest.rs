//! Any bytes as `manifest.json`: a manifest or a typed error, never a panic; a manifest that
//! parses has passed every check, so its sums cannot overflow.

#![no_main]

use dynrefer::bundle::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse("fuzz", data) {
        let _ = (m.total_bytes(), m.parameters());
    }
});
