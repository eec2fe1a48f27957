//! Hostile bundles are refused by the command line with one clear line each, before any file
//! outside the bundle is read and without a panic.

mod common;

use std::process::Command;

use common::hostile;

#[test]
fn hostile_bundles_are_refused_with_one_line_each() {
    let root = common::scratch_dir("hostile", "bundles");
    let scene = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/examples/scene-1.jpg");
    for case in hostile::bundles(&root) {
        let out = Command::new(env!("CARGO_BIN_EXE_dynrefer"))
            .args(["describe", "--image", scene.to_str().unwrap(), "--box", "310,380,532.2,571.4", "--model"])
            .arg(&case.dir)
            .output()
            .unwrap();
        common::assert_fails(&out, case.name, case.needles);
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn model_output_that_looks_like_html_stays_text_in_json() {
    let root = common::scratch_dir("hostile", "html");
    let dir = hostile::html_bundle(&root);
    let scene = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/examples/scene-1.jpg");
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .args(["describe", "--image", scene.to_str().unwrap(), "--box", "310,380,532.2,571.4", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let class = json["classes"][0]["name"].as_str().unwrap();
    assert!(class.starts_with(hostile::INJECTION), "{class}");
    let _ = std::fs::remove_dir_all(root);
}
