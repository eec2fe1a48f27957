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

impl Pickle {
    /// `torch._utils._rebuild_tensor_v2` of storage `key`.
    fn tensor(&mut self, t: &PthTensor, key: usize) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        // persistent id: ('storage', torch.XStorage, key, 'cpu', numel)
        self.op(b'(');
        self.string("storage");
        self.global("torch", t.data.storage());
        self.string(&key.to_string());
        self.string("cpu");
        self.int(t.data.len());
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0);
        self.tuple(&t.shape);
        let mut stride = vec![1; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * t.shape[d + 1];
        }
        self.tuple(&stride);
        self.op(0x89); // NEWFALSE: requires_grad
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
        self.op(b't');
        self.op(b'R');
    }

    /// `{name: tensor}` with storages numbered from `first`.
    fn state_dict(&mut self, tensors: &[PthTensor], first: usize) {
        self.op(b'}');
        self.op(b'(');
        for (i, t) in tensors.iter().enumerate() {
            self.string(&t.name);
            self.tensor(t, first + i);
        }
        self.op(b'u'); // SETITEMS
    }
}

/// The pickle of `{name: tensor}` (inside `{"model": …}` when `nested`).
fn pickle(tensors: &[PthTensor], nested: bool) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    if nested {
        p.op(b'}');
        p.string("model");
    }
    p.state_dict(tensors, 0);
    if nested {
        p.op(b's'); // SETITEM
    }
    p.op(b'.');
    p.0
}

/// The pickle of a checkpoint as LAVIS' runner saves it: `{"model": {…}, "optimizer": {"state":
/// {0: {"exp_avg": …, "exp_avg_sq": …}, …}}, "config": {…}, "scaler": {…}, "epoch": 4}`, the
/// optimizer's tensors numbered after the model's.
fn pickle_training_save(model: &[PthTensor], optimizer: &[PthTensor]) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.op(b'}');
    p.op(b'(');
    p.string("model");
    p.state_dict(model, 0);
    p.string("optimizer");
    p.op(b'}');
    p.string("state");
    p.op(b'}');
    p.op(b'(');
    for (i, pair) in optimizer.chunks(2).enumerate() {
        p.int(i);
        p.op(b'}');
        p.op(b'(');
        for (j, t) in pair.iter().enumerate() {
            p.string(if j == 0 { "exp_avg" } else { "exp_avg_sq" });
            p.tensor(t, model.len() + 2 * i + j);
        }
        p.op(b'u');
    }
    p.op(b'u');
    p.op(b's');
    p.string("config");
    p.op(b'}');
    p.string("task");
    p.string("dynrefer");
    p.op(b's');
    p.string("scaler");
    p.op(b'}');
    p.string("growth_interval");
    p.int(2000);
    p.op(b's');
    p.string("epoch");
    p.int(4);
    p.op(b'u');
    p.op(b'.');
    p.0
}

fn write_zip(path: &std::path::Path, pickle: &[u8], tensors: &[&PthTensor]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
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

/// Writes a checkpoint in LAVIS' training-save layout: the weights under `model`, and the
/// optimizer's state (pairs of moments), config, scaler and epoch beside them.
pub fn write_training_save(path: &std::path::Path, model: &[PthTensor], optimizer: &[PthTensor]) {
    let all: Vec<&PthTensor> = model.iter().chain(optimizer).collect();
    write_zip(path, &pickle_training_save(model, optimizer), &all);
}

/// Writes `tensors` as a `.pth` file.
pub fn write_pth(path: &std::path::Path, tensors: &[PthTensor], nested: bool) {
    write_zip(path, &pickle(tensors, nested), &tensors.iter().collect::<Vec<_>>());
}

/// A checkpoint's tensors as f32, by name (nested `model` dicts flattened as the converter does).
#[cfg(feature = "convert")]
pub fn read_pth(path: &std::path::Path) -> Vec<PthTensor> {
    use burn::store::ModuleStore;
    let mut store = burn::store::PytorchStore::from_file(path).map_indices_contiguous(false);
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(k, t)| {
            let data = burn::store::bridge::to_data(t).unwrap().convert::<f32>();
            PthTensor {
                name: k.strip_prefix("model.").unwrap_or(k).to_string(),
                shape: t.shape.to_vec(),
                data: Data::F32(data.try_to_vec().unwrap()),
            }
        })
        .collect()
}

/// Deterministic small values.
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

pub fn f32_tensor(name: &str, shape: &[usize], seed: u64, scale: f32) -> PthTensor {
    let n = shape.iter().product();
    PthTensor { name: name.into(), shape: shape.to_vec(), data: Data::F32(values(n, seed, scale)) }
}

pub fn to_bits(v: &[f32], bf16: bool) -> Vec<u16> {
    v.iter().map(|&x| if bf16 { (x.to_bits() >> 16) as u16 } else { half_bits(x) }).collect()
}

/// f32 → IEEE half (round toward zero; the test only needs exact round trips of the stored bits).
pub fn half_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}
