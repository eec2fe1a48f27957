//! Writes PyTorch checkpoints (`torch.save`'s zip format: a pickled dict of tensors whose storages
//! are separate zip entries), so that tests can make official-format files of any shape without
//! Python. Only what state dicts need: float32 / float16 / bfloat16 tensors, optionally nested
//! under `{"model": ...}` as LAVIS saves them.

#![allow(dead_code)]

use std::io::Write;

pub enum Data {
    F32(Vec<f32>),
    /// Raw IEEE half bits.
    F16(Vec<u16>),
    /// Raw bfloat16 bits.
    Bf16(Vec<u16>),
}

pub struct PthTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Data {
    fn storage(&self) -> &'static str {
        match self {
            Data::F32(_) => "FloatStorage",
            Data::F16(_) => "HalfStorage",
            Data::Bf16(_) => "BFloat16Storage",
        }
    }

    fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F16(v) | Data::Bf16(v) => v.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F16(v) | Data::Bf16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }

    fn string(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        self.op(b'J'); // BININT
        self.0.extend((v as i32).to_le_bytes());
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
    }

    fn tuple(&mut self, items: &[usize]) {
        self.op(b'(');
        for &i in items {
            self.int(i);
        }
        self.op(b't');
    }
}

/// The pickle of `{name: tensor}` (inside `{"model": …}` when `nested`).
fn pickle(tensors: &[PthTensor], nested: bool) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    if nested {
        p.op(b'}');
        p.string("model");
    }
    p.op(b'}');
    p.op(b'(');
    for (i, t) in tensors.iter().enumerate() {
        p.string(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // persistent id: ('storage', torch.XStorage, key, 'cpu', numel)
        p.op(b'(');
        p.string("storage");
        p.global("torch", t.data.storage());
        p.string(&i.to_string());
        p.string("cpu");
        p.int(t.data.len());
        p.op(b't');
        p.op(b'Q'); // BINPERSID
        p.int(0);
        p.tuple(&t.shape);
        let mut stride = vec![1; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * t.shape[d + 1];
        }
        p.tuple(&stride);
        p.op(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u'); // SETITEMS
    if nested {
        p.op(b's'); // SETITEM
    }
    p.op(b'.');
    p.0
}

/// Writes `tensors` as a `.pth` file.
pub fn write_pth(path: &std::path::Path, tensors: &[PthTensor], nested: bool) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(&pickle(tensors, nested)).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    for (i, t) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), options).unwrap();
        zip.write_all(&t.data.bytes()).unwrap();
    }
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}
