//! Photo bytes + box + options → views must never panic: either views or a typed error.
//! Input layout: [num_views, size selector, 32 bytes of four f64 box coordinates, photo bytes…].
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run views` (see README).

#![no_main]

use dynrefer::photo::decode_photo;
use dynrefer::views::{RegionBox, ViewOptions, build_views};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 34 {
        return;
    }
    let opts = ViewOptions {
        num_views: usize::from(data[0] % 7),
        size: [0, 1, 7, 32, 112, 224, 5000][usize::from(data[1] % 7)],
    };
    let coords: [f64; 4] = std::array::from_fn(|i| {
        let raw = f64::from_le_bytes(data[2 + 8 * i..10 + 8 * i].try_into().unwrap());
        // Mostly plausible coordinates, sometimes the raw bits (NaN, infinities, huge values).
        if raw.is_finite() && raw.abs() < 1e6 { raw.abs() % 300.0 } else { raw }
    });
    let text = String::from_utf8_lossy(&data[2..34]);
    let _ = text.parse::<RegionBox>();
    // A small pixel budget keeps each run fast; larger photos are refused before decoding.
    if let Ok(img) = decode_photo(&data[34..], 1 << 20) {
        if let Ok(views) = build_views(&img, RegionBox(coords), &opts) {
            assert_eq!(views.views.len(), opts.num_views);
            assert_eq!(views.pixels().len(), opts.num_views * 3 * (opts.size * opts.size) as usize);
        }
    }
});
