//! The official evaluation code in Python for the `eval` parity tests: pycocoevalcap 1.2 and the
//! ports in `tests/eval/`, in the venv that `tools/eval-reference.sh` makes.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The reference venv's python, installed on first use.
pub fn python() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash").arg(format!("{root}/tools/eval-reference.sh")).output().unwrap();
    assert!(out.status.success(), "tools/eval-reference.sh: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `tests/eval/SCRIPT` on `input` (written to a scratch file of `test`/`name`): its JSON answer.
pub fn run(test: &str, script: &str, input: &Value, name: &str) -> Value {
    let dir = super::scratch_dir(test, name);
    let file = dir.join("input.json");
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let script = format!("{}/tests/eval/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python()).arg(script).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The METEOR 1.5 jar of the reference venv.
pub fn meteor_jar() -> PathBuf {
    dynrefer::eval::meteor::jar_of_python(python().as_os_str()).unwrap()
}

/// A float a port printed as its repr string (exact, where serde_json's default parsing of a
/// JSON number may be one ulp off), or a plain JSON number.
pub fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{value} is not a float"))
}
