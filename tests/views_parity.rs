//! The nested views against the PyTorch reference (`../shared/reference/views.py`, itself
//! bit-identical with the official processor): same choices, same boxes, bit-identical crops and
//! normalised pixels, on photos and boxes of every kind. See `tools/gen_views_expected.py`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use dynrefer::views::{RegionBox, ViewOptions, build_views};

#[derive(Deserialize)]
struct Expected {
    photos: BTreeMap<String, PhotoInfo>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct PhotoInfo {
    width: u32,
    height: u32,
    rgb_sha256: String,
}

#[derive(Deserialize)]
struct Case {
    image: String,
    #[serde(rename = "box")]
    region: [f64; 4],
    num_views: usize,
    size: u32,
    views: Vec<ExpectedView>,
    crops_sha256: Vec<String>,
    pixels_sha256: String,
}

#[derive(Deserialize, Debug, PartialEq)]
struct ExpectedView {
    #[serde(rename = "box")]
    crop_box: [i64; 4],
    ratio: f64,
    region_box: [f32; 4],
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn views_match_the_reference_bit_for_bit() {
    let expected: Expected = serde_json::from_slice(&std::fs::read(data("views_expected.json")).unwrap()).unwrap();
    let photos: BTreeMap<&str, _> =
        common::photos().into_iter().map(|p| (p.name, decode_photo(&p.png, DEFAULT_MAX_PIXELS).unwrap())).collect();
    for (name, info) in &expected.photos {
        let img = &photos[name.as_str()];
        assert_eq!(img.dimensions(), (info.width, info.height), "{name}");
        assert_eq!(
            common::sha256_hex(img.as_raw()),
            info.rgb_sha256,
            "photo {name} is not the one the expectations were made from"
        );
    }
    let mut failures = Vec::new();
    for c in &expected.cases {
        let opts = ViewOptions { num_views: c.num_views, size: c.size };
        let label = format!("{} {:?} views={} size={}", c.image, c.region, c.num_views, c.size);
        let got = build_views(&photos[c.image.as_str()], RegionBox(c.region), &opts).unwrap();
        let views: Vec<ExpectedView> = got
            .views
            .iter()
            .map(|v| ExpectedView { crop_box: v.crop_box, ratio: v.ratio, region_box: v.region_box })
            .collect();
        if views != c.views {
            failures.push(format!("{label}: views {views:?}, expected {:?}", c.views));
            continue;
        }
        let crops: Vec<String> = got.views.iter().map(|v| common::sha256_hex(&v.rgb)).collect();
        if crops != c.crops_sha256 {
            failures.push(format!("{label}: resized crops differ"));
            continue;
        }
        if common::sha256_hex(&f32_bytes(&got.pixels())) != c.pixels_sha256 {
            failures.push(format!("{label}: normalised pixels differ"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        expected.cases.len(),
        failures.join("\n")
    );
    assert!(expected.cases.len() >= 150, "only {} cases", expected.cases.len());
}

#[derive(Deserialize)]
struct JpegInfo {
    stored_size: [u32; 2],
    upright_size: [u32; 2],
}

/// A camera-like JPEG (4:2:0) with EXIF orientation 6 is turned upright, and its pixels stay
/// within a few levels of PIL's libjpeg decoding: the two decoders round the IDCT and the chroma
/// upsampling differently, so JPEG input is close to the official pipeline but not bit-identical.
#[test]
fn jpeg_is_turned_upright_and_decoded_close_to_pil() {
    let info: JpegInfo = serde_json::from_slice(&std::fs::read(data("exif6.json")).unwrap()).unwrap();
    let img = decode_photo(&std::fs::read(data("exif6.jpg")).unwrap(), DEFAULT_MAX_PIXELS).unwrap();
    let pil = image::open(data("exif6_pil.png")).unwrap().into_rgb8();
    assert_eq!(info.stored_size, [info.upright_size[1], info.upright_size[0]]);
    assert_eq!([img.width(), img.height()], info.upright_size);
    assert_eq!(img.dimensions(), pil.dimensions());
    let diffs: Vec<u8> = img.as_raw().iter().zip(pil.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
    let max = diffs.iter().copied().max().unwrap();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    assert!(max <= 8 && mean < 0.5, "max {max}, mean {mean}");
}

/// Writes the parity photos for `tools/gen_views_expected.py`:
/// `DYNREFER_PHOTOS_DIR=DIR cargo test --test views_parity write_photos -- --ignored`.
#[test]
#[ignore = "regenerates test inputs"]
fn write_photos() {
    let dir = std::env::var("DYNREFER_PHOTOS_DIR").expect("set DYNREFER_PHOTOS_DIR");
    common::write_photos(std::path::Path::new(&dir));
}
