//! Text a person types: a box (`x1,y1,x2,y2`) and control words, run through the built-in
//! model's tokenizer as `describe` does: parsed or refused, never a panic.

#![no_main]

use std::sync::OnceLock;

use dynrefer::text::caption::{T5Tokenizer, control_string};
use dynrefer::views::RegionBox;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static T5Tokenizer {
    static TOKENIZER: OnceLock<T5Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| T5Tokenizer::from_json(include_bytes!("../../www/model/tokenizer.json"), 32).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = text.parse::<RegionBox>();
    let controls = control_string(["square", "red"], Some(&text));
    if let Ok(ids) = tokenizer().encode(&controls) {
        assert!(ids.len() <= 32, "the control words are cut to the model's length");
        let _ = tokenizer().decode(&ids);
    }
});
