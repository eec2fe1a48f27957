//! Any bytes as a bundle's `tokenizer.json`: a tokenizer or a typed error; a tokenizer that loads
//! encodes control words and decodes any ids without a panic.

#![no_main]

use dynrefer::text::caption::T5Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = T5Tokenizer::from_json(data, 32) {
        let _ = t.encode("red,striped,square|");
        let _ = t.decode(&[0, 1, 2, 3, 7, 39, 1000, u32::MAX]);
    }
});
