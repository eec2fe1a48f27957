//! The CLIP tokenizer against the reference's `ClipBPE` (`tools/gen_model_fixtures.py`), with a
//! small merges file learned from the test texts.

use serde::Deserialize;

use dynrefer::text::clip_bpe::ClipBpe;

#[derive(Deserialize)]
struct Expected {
    texts: Vec<String>,
    context: usize,
    sot: u32,
    eot: u32,
    rows: Vec<Vec<u32>>,
}

#[test]
fn tokenizes_like_the_reference() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let bpe = ClipBpe::from_gzip(&std::fs::read(format!("{dir}clip_bpe_merges.txt.gz")).unwrap()).unwrap();
    let expected: Expected = serde_json::from_slice(&std::fs::read(format!("{dir}clip_bpe.json")).unwrap()).unwrap();
    assert_eq!((bpe.start, bpe.end), (expected.sot, expected.eot));
    for (text, want) in expected.texts.iter().zip(&expected.rows) {
        let row = bpe.tokenize(text, expected.context);
        assert_eq!(&row[..want.len()], want.as_slice(), "{text:?}");
        assert!(row[want.len()..].iter().all(|&v| v == 0), "{text:?}: padding");
    }
}

#[test]
fn refuses_a_file_that_is_not_gzip() {
    assert!(ClipBpe::from_gzip(b"e r\nt h").is_err());
}
