//! The `dynrefer` command line: the views contract (JSON, `--dump`) and how it refuses bad input
//! (one line on stderr naming the input, nothing on stdout, non-zero exit).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;

use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use dynrefer::views::{RegionBox, ViewOptions, build_views};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("dynrefer-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dynrefer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn field_png() -> Vec<u8> {
    common::photos().into_iter().find(|p| p.name == "field").unwrap().png
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn views_prints_the_contract_json_and_dumps_tensors() {
    let dir = Scratch::new("ok");
    let png = field_png();
    let img = dir.file("field.png", &png);
    let dump = dir.0.join("views.safetensors");
    let (ok, out, err) = dynrefer(&[
        "views",
        "--image",
        path_str(&img),
        "--box",
        "51.2,307.2,307.2,460.8",
        "--num-views",
        "4",
        "--dump",
        path_str(&dump),
    ]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let native = build_views(
        &decode_photo(&png, DEFAULT_MAX_PIXELS).unwrap(),
        RegionBox([51.2, 307.2, 307.2, 460.8]),
        &ViewOptions { num_views: 4, size: 224 },
    )
    .unwrap();
    assert_eq!(json["image_size"], serde_json::json!([640, 480]));
    assert_eq!(json["views"].as_array().unwrap().len(), 4);
    assert_eq!(json["views"][0]["ratio"], 0.0);
    assert_eq!(json["views"][0]["box"], serde_json::json!([51, 307, 307, 460]));
    assert_eq!(json, serde_json::to_value(&native).unwrap());

    let bytes = std::fs::read(&dump).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let pixels = st.tensor("pixels").unwrap();
    assert_eq!(pixels.shape(), &[4, 3, 224, 224]);
    let want: Vec<u8> = native.pixels().iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(pixels.data(), want.as_slice());
    let boxes = st.tensor("region_boxes").unwrap();
    assert_eq!(boxes.shape(), &[4, 4]);
    let want: Vec<u8> = native.region_boxes().iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(boxes.data(), want.as_slice());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid small PNG whose header claims `width` x `height` pixels.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = field_png();
    // IHDR data starts after the 8-byte signature, the 4-byte length and the 4-byte type.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn bad_input_gives_one_clear_line_and_no_output() {
    let dir = Scratch::new("bad");
    let png = field_png();
    let good = dir.file("good.png", &png);
    let cases: Vec<(Vec<String>, &str)> = {
        let img = |name: &str, bytes: &[u8]| path_str(&dir.file(name, bytes)).to_string();
        let g = path_str(&good).to_string();
        let v = |image: &str, b: &str| {
            vec!["views".into(), "--image".into(), image.to_string(), "--box".into(), b.to_string()]
        };
        vec![
            (v(&img("empty.png", b""), "1,1,5,5"), "the file is empty"),
            (v(&img("notes.png", b"just some text, not a picture"), "1,1,5,5"), "not an image in a supported format"),
            (v(&img("half.png", &png[..png.len() / 2]), "1,1,5,5"), "damaged or truncated"),
            (v(&img("header.png", &png[..40]), "1,1,5,5"), "damaged or truncated"),
            (v(&img("huge.png", &png_claiming(20000, 20000)), "1,1,5,5"), "400.0 megapixels, over the limit of 100.0"),
            (v("/nonexistent/photo.png", "1,1,5,5"), "cannot read the file"),
            (v(&g, "1,2,3"), "expected four comma-separated numbers"),
            (v(&g, "1,2,three,4"), "\"three\" is not a number"),
            (v(&g, "1,2,NaN,4"), "must be finite"),
            (v(&g, "10,10,5,20"), "zero or negative area"),
            (v(&g, "10,10,10,20"), "zero or negative area"),
            (v(&g, "-5,10,50,20"), "outside the 640x480 image"),
            (v(&g, "5,10,50,481"), "outside the 640x480 image"),
            (v(&g, "0,10,0.5,20"), "covers no whole pixel"),
            ([v(&g, "1,1,5,5"), vec!["--num-views".into(), "0".into()]].concat(), "at least 1"),
            ([v(&g, "1,1,5,5"), vec!["--max-megapixels".into(), "0.1".into()]].concat(), "over the limit of 0.1"),
            ([v(&g, "1,1,5,5"), vec!["--num-views".into(), "three".into()]].concat(), "invalid value 'three'"),
            (vec!["views".into(), "--image".into(), g.clone()], "--box <X1,Y1,X2,Y2>"),
            (vec!["describe-everything".into()], "unrecognized subcommand"),
        ]
    };
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = dynrefer(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?} printed {out:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("dynrefer: ") && err.contains(want), "{args:?}: {err:?} should say {want:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bench_prints_json_for_tools_and_a_table_for_people() {
    let dir = Scratch::new("bench");
    let img = dir.file("field.png", &field_png());
    let (ok, out, err) =
        dynrefer(&["bench", "views", "--image", path_str(&img), "--box", "51.2,307.2,307.2,460.8", "--iters", "2"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["iters"], 2);
    assert!(report["median_ms"]["views"].as_f64().is_some_and(|ms| ms > 0.0), "{report}");
    assert!(report["machine"]["threads"].as_u64().is_some_and(|t| t >= 1), "{report}");
    assert!(err.contains("| stage | median ms |") && err.contains("| building the views |"), "{err}");
}
