//! The paper's benchmarks from the annotation files the DynRefer release evaluates on: RefCOCOg
//! and Visual Genome region captions (METEOR, CIDEr-D), VG dense captioning (mAP), OVAD
//! attributes (mAP) and COCO classes (accuracy).
//!
//! Every file has the release's layout: `dataset.image_root`, `images` (`id`, `file_name`) and
//! `annotations` (`id`, `image_id`, `caption`, `bbox` as x0,y0,x1,y1, `segmentation`,
//! `extra_info`), with the OVAD file's `attrs` beside them. As in the release, a region's box is
//! the extent of its segmentation (a polygon or a COCO RLE) where it has one.
//!
//! Predictions are written one JSON line per region as they are made, so that a stopped run
//! goes on where it stopped; the metrics read them back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::describe::{DescribeOptions, Describer, Description, MAX_BATCH_REGIONS, Watcher};
use crate::eval::{cider, densecap, meteor, ovad, ptb};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::views::RegionBox;

/// A benchmark of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    RefCocog,
    Vg,
    DenseCap,
    Ovad,
    Coco,
}

impl Task {
    pub const ALL: [Task; 5] = [Task::RefCocog, Task::Vg, Task::DenseCap, Task::Ovad, Task::Coco];

    pub fn name(self) -> &'static str {
        match self {
            Task::RefCocog => "refcocog",
            Task::Vg => "vg",
            Task::DenseCap => "densecap",
            Task::Ovad => "ovad",
            Task::Coco => "coco",
        }
    }

    /// The release's generation settings for the task: two beams, at most 20 new tokens, and
    /// the tag threshold of its config (0.76 for RefCOCOg, 0.8 for VG captions, else the bundle's).
    pub fn options(self) -> DescribeOptions {
        let tag_threshold = match self {
            Task::RefCocog => Some(0.76),
            Task::Vg => Some(0.8),
            _ => None,
        };
        DescribeOptions { beams: 2, max_new_tokens: 20, tag_threshold, ..DescribeOptions::default() }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
            format!("unknown task {s:?}: one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {message}")]
    Annotations { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Predictions { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Image { path: PathBuf, message: String },
    #[error("the model: {0}")]
    Model(String),
    #[error(transparent)]
    Meteor(#[from] meteor::MeteorError),
}

/// One annotated region.
#[derive(Clone, Debug)]
pub struct Region {
    pub id: u64,
    pub image_id: u64,
    pub region: RegionBox,
    pub caption: String,
    /// COCO: the class's name.
    pub category: Option<String>,
    /// OVAD: per attribute 1 (has it), 0 (has not) or -1 (not annotated).
    pub attribute_labels: Option<Vec<i8>>,
}

/// An OVAD attribute as the file lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub freq_set: ovad::FreqSet,
}

/// An annotation file.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub image_root: Option<String>,
    /// Image id → file name.
    pub images: BTreeMap<u64, String>,
    pub regions: Vec<Region>,
    pub attributes: Vec<Attribute>,
}

/// The model's answer for one region, as a line of the predictions file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Prediction {
    pub id: u64,
    pub caption: String,
    /// The caption's probability: dense captioning ranks by it.
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// OVAD: each attribute's score, in the file's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<f64>,
    /// Why the region could not be described (it then scores as a wrong answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The box a region's segmentation covers, as the release derives it; `None` without one.
fn segmentation_box(seg: &Value) -> Result<Option<[f64; 4]>, String> {
    match seg {
        Value::Array(polygons) if !polygons.is_empty() => {
            let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
            for polygon in polygons {
                let points = polygon.as_array().ok_or("a polygon is not a list of numbers")?;
                for (i, p) in points.iter().enumerate() {
                    let p = p.as_f64().ok_or("a polygon is not a list of numbers")?;
                    let (lo, hi) = if i % 2 == 0 { (0, 2) } else { (1, 3) };
                    b[lo] = b[lo].min(p);
                    b[hi] = b[hi].max(p);
                }
            }
            Ok(b.iter().all(|v| v.is_finite()).then_some(b))
        }
        Value::Object(rle) => rle_box(rle).map(Some),
        _ => Ok(None),
    }
}

/// The extent of a COCO run-length mask (column-major runs, background first), as
/// pycocotools' `toBbox` gives it, in x0,y0,x1,y1.
fn rle_box(rle: &serde_json::Map<String, Value>) -> Result<[f64; 4], String> {
    let size: Vec<u64> = rle
        .get("size")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .filter(|s: &Vec<u64>| s.len() == 2)
        .ok_or("an RLE segmentation without its [height, width] size")?;
    let height = size[0];
    let counts = match rle.get("counts") {
        Some(Value::Array(c)) => c.iter().map(|v| v.as_u64().ok_or("RLE counts must be whole numbers")).collect(),
        Some(Value::String(s)) => decode_rle_counts(s),
        _ => Err("an RLE segmentation without counts"),
    }?;
    let (mut x0, mut y0, mut x1, mut y1) = (u64::MAX, u64::MAX, 0, 0);
    let mut at = 0u64;
    for (i, &run) in counts.iter().enumerate() {
        if i % 2 == 1 && run > 0 && height > 0 {
            let (first, last) = (at, at + run - 1);
            let (cf, cl) = (first / height, last / height);
            x0 = x0.min(cf);
            x1 = x1.max(cl);
            let (top, bottom) = if cf == cl { (first % height, last % height) } else { (0, height - 1) };
            y0 = y0.min(top);
            y1 = y1.max(bottom);
        }
        at += run;
    }
    if x0 == u64::MAX {
        return Ok([0.0; 4]);
    }
    Ok([x0 as f64, y0 as f64, (x1 + 1) as f64, (y1 + 1) as f64])
}

/// COCO's compressed RLE string: each count in 5-bit groups (a continuation bit, the last group
/// sign-extended), from the fourth on as a difference to the count two before.
fn decode_rle_counts(s: &str) -> Result<Vec<u64>, &'static str> {
    let bytes = s.as_bytes();
    let mut counts: Vec<i64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let (mut x, mut k) = (0i64, 0);
        loop {
            let c = i64::from(*bytes.get(p).ok_or("a cut RLE string")?) - 48;
            if !(0..64).contains(&c) || k > 12 {
                return Err("an RLE string with characters outside its alphabet");
            }
            x |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        if counts.len() > 2 {
            x += counts[counts.len() - 2];
        }
        counts.push(x);
    }
    counts.into_iter().map(|c| u64::try_from(c).map_err(|_| "an RLE string with a negative count")).collect()
}

/// Reads an annotation file of the release's layout.
pub fn read_dataset(path: &Path) -> Result<Dataset, EvalError> {
    let fail = |message: String| EvalError::Annotations { path: path.to_path_buf(), message };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let root: Value = serde_json::from_slice(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let list = |key: &str| -> Result<&Vec<Value>, EvalError> {
        field(&root, key).and_then(Value::as_array).ok_or_else(|| fail(format!("no \"{key}\" list")))
    };
    let mut images = BTreeMap::new();
    for image in list("images")? {
        let id = field(image, "id").and_then(Value::as_u64).ok_or_else(|| fail("an image without an id".into()))?;
        let file = field(image, "file_name").and_then(Value::as_str);
        images.insert(id, file.ok_or_else(|| fail(format!("image {id} has no file_name")))?.to_string());
    }
    let mut regions = Vec::new();
    for a in list("annotations")? {
        let id = field(a, "id").and_then(Value::as_u64).ok_or_else(|| fail("an annotation without an id".into()))?;
        let at = |message: String| fail(format!("annotation {id}: {message}"));
        let image_id = field(a, "image_id").and_then(Value::as_u64).ok_or_else(|| at("no image_id".into()))?;
        if !images.contains_key(&image_id) {
            return Err(at(format!("image {image_id} is not in \"images\"")));
        }
        let from_segmentation = match field(a, "segmentation") {
            Some(seg) => segmentation_box(seg).map_err(at)?,
            None => None,
        };
        let bbox = match from_segmentation {
            Some(b) => b,
            None => field(a, "bbox")
                .and_then(|b| serde_json::from_value::<[f64; 4]>(b.clone()).ok())
                .ok_or_else(|| at("no bbox [x0, y0, x1, y1] and no segmentation".into()))?,
        };
        let extra = field(a, "extra_info");
        let category = extra
            .and_then(|e| field(e, "coco_result"))
            .and_then(|c| field(c, "category"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let attribute_labels = extra
            .and_then(|e| field(e, "ovad_result"))
            .and_then(|o| field(o, "att_vec"))
            .map(|v| serde_json::from_value::<Vec<i8>>(v.clone()))
            .transpose()
            .map_err(|e| at(format!("att_vec: {e}")))?;
        regions.push(Region {
            id,
            image_id,
            region: RegionBox(bbox),
            caption: field(a, "caption").and_then(Value::as_str).unwrap_or_default().to_string(),
            category,
            attribute_labels,
        });
    }
    let attributes: Vec<Attribute> = match field(&root, "attrs") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| fail(format!("attrs: {e}")))?,
        None => Vec::new(),
    };
    let image_root = field(&root, "dataset").and_then(|d| field(d, "image_root")).and_then(Value::as_str);
    Ok(Dataset { image_root: image_root.map(str::to_string), images, regions, attributes })
}

impl Dataset {
    /// Checks that the file has what `task` scores.
    pub fn check_for(&self, task: Task) -> Result<(), String> {
        match task {
            Task::Ovad if self.attributes.is_empty() => Err("an OVAD file needs its \"attrs\" list".into()),
            Task::Ovad => match self
                .regions
                .iter()
                .find(|r| r.attribute_labels.as_ref().is_none_or(|l| l.len() != self.attributes.len()))
            {
                Some(r) => Err(format!(
                    "annotation {}: extra_info.ovad_result.att_vec must have one label per attribute ({})",
                    r.id,
                    self.attributes.len()
                )),
                None => Ok(()),
            },
            Task::Coco => match self.regions.iter().find(|r| r.category.is_none() && r.caption.is_empty()) {
                Some(r) => Err(format!("annotation {}: no extra_info.coco_result.category", r.id)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// The predictions already in `path` (none when it does not exist). A last line cut by a
/// stopped run is dropped; any other bad line is an error.
pub fn read_predictions(path: &Path) -> Result<HashMap<u64, Prediction>, EvalError> {
    let fail = |message: String| EvalError::Predictions { path: path.to_path_buf(), message };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(fail(e.to_string())),
    };
    let lines: Vec<String> =
        std::io::BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|e| fail(e.to_string()))?;
    let mut out = HashMap::new();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Prediction>(line) {
            Ok(p) => {
                out.insert(p.id, p);
            }
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => return Err(fail(format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

/// The predictions file, ready for more lines: a last line cut by a stopped run is removed.
fn open_for_append(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let bytes = std::fs::read(path)?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        file.set_len(whole as u64)?;
    }
    Ok(file)
}

fn prediction(task: Task, region: &Region, d: Description, attributes: &[Attribute]) -> Result<Prediction, String> {
    let class = (task == Task::Coco)
        .then(|| d.classes.iter().max_by(|a, b| a.score.total_cmp(&b.score)).map(|c| c.name.clone()))
        .flatten();
    let attributes = if task == Task::Ovad {
        let scores: HashMap<&str, f64> = d.attributes.iter().map(|a| (a.name.as_str(), f64::from(a.score))).collect();
        attributes
            .iter()
            .map(|a| scores.get(a.name.as_str()).copied())
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| format!("region {}: the model does not score all of the file's attributes", region.id))?
    } else {
        Vec::new()
    };
    Ok(Prediction { id: region.id, caption: d.caption, score: d.caption_score, class, attributes, skipped: None })
}

/// Describes the regions without a prediction in `out` (all of them without `out`), image by
/// image in batches, appending each answer to `out`; returns every region's prediction.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    describer: &Describer,
    dataset: &Dataset,
    regions: &[Region],
    images: &Path,
    task: Task,
    options: &DescribeOptions,
    out: Option<&Path>,
    mut progress: impl FnMut(usize, usize),
) -> Result<HashMap<u64, Prediction>, EvalError> {
    let mut done = match out {
        Some(path) => read_predictions(path)?,
        None => HashMap::new(),
    };
    if task == Task::Ovad {
        let names: HashSet<&str> = describer.manifest.vocabularies.attributes.iter().map(String::as_str).collect();
        if let Some(a) = dataset.attributes.iter().find(|a| !names.contains(a.name.as_str())) {
            return Err(EvalError::Model(format!("its attribute vocabulary has no {:?}", a.name)));
        }
    }
    let mut file = match out {
        Some(path) => Some(
            open_for_append(path)
                .map_err(|e| EvalError::Predictions { path: path.to_path_buf(), message: e.to_string() })?,
        ),
        None => None,
    };
    let mut by_image: BTreeMap<u64, Vec<&Region>> = BTreeMap::new();
    for r in regions.iter().filter(|r| !done.contains_key(&r.id)) {
        by_image.entry(r.image_id).or_default().push(r);
    }
    let total = regions.len();
    progress(total - by_image.values().map(Vec::len).sum::<usize>(), total);
    for (image_id, todo) in by_image {
        let path = images.join(&dataset.images[&image_id]);
        let bytes =
            std::fs::read(&path).map_err(|e| EvalError::Image { path: path.clone(), message: e.to_string() })?;
        let photo = decode_photo(&bytes, DEFAULT_MAX_PIXELS)
            .map_err(|e| EvalError::Image { path: path.clone(), message: e.to_string() })?;
        for batch in todo.chunks(MAX_BATCH_REGIONS) {
            let mut answers = Vec::new();
            let mut views = Vec::new();
            let mut described = Vec::new();
            for r in batch {
                match describer.views(&photo, r.region, options.num_views) {
                    Ok(v) => {
                        views.push(v);
                        described.push(*r);
                    }
                    Err(e) => answers.push(Prediction {
                        id: r.id,
                        caption: String::new(),
                        score: 0.0,
                        class: None,
                        attributes: Vec::new(),
                        skipped: Some(e.to_string()),
                    }),
                }
            }
            if !views.is_empty() {
                let (mut go_on, mut clock) = (|_| ControlFlow::Continue(()), || 0.0);
                let watcher = Watcher { on_stage: &mut go_on, clock: &mut clock, take_turn: None };
                let run = describer.describe_batch_watched(views, options, watcher);
                let (descriptions, _) =
                    futures::executor::block_on(run).map_err(|e| EvalError::Model(e.to_string()))?;
                for (r, d) in described.into_iter().zip(descriptions) {
                    answers.push(prediction(task, r, d, &dataset.attributes).map_err(EvalError::Model)?);
                }
            }
            for p in answers {
                if let (Some(file), Some(path)) = (file.as_mut(), out) {
                    let line = serde_json::to_string(&p).expect("a prediction serialises");
                    writeln!(file, "{line}")
                        .and_then(|()| file.flush())
                        .map_err(|e| EvalError::Predictions { path: path.to_path_buf(), message: e.to_string() })?;
                }
                done.insert(p.id, p);
            }
            progress(regions.iter().filter(|r| done.contains_key(&r.id)).count(), total);
        }
    }
    Ok(done)
}

/// The task's figures, as the paper reports them (×100).
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub task: &'static str,
    pub regions: usize,
    /// Regions the model could not describe (scored as wrong answers).
    pub skipped: usize,
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

/// Scores `predictions` of `regions` on `task`. `meteor_jar` is needed for captions and dense
/// captioning.
pub fn score(
    task: Task,
    dataset: &Dataset,
    regions: &[Region],
    predictions: &HashMap<u64, Prediction>,
    meteor_jar: impl FnOnce() -> Result<PathBuf, meteor::MeteorError>,
) -> Result<Scores, EvalError> {
    let answer = |r: &Region| predictions.get(&r.id);
    let mut metrics = BTreeMap::new();
    match task {
        Task::RefCocog | Task::Vg => {
            let hypotheses: Vec<String> =
                regions.iter().map(|r| ptb::tokenize(answer(r).map_or("", |p| p.caption.as_str()))).collect();
            let references: Vec<Vec<String>> = regions.iter().map(|r| vec![ptb::tokenize(&r.caption)]).collect();
            let pairs: Vec<(&str, &[String])> =
                hypotheses.iter().map(String::as_str).zip(references.iter().map(Vec::as_slice)).collect();
            let meteor = meteor::Meteor::start(&meteor_jar()?)?.score(&pairs)?;
            metrics.insert("METEOR".into(), 100.0 * meteor.corpus);
            metrics.insert("CIDEr".into(), 100.0 * cider::cider(&pairs).corpus);
        }
        Task::DenseCap => {
            let mut by_image: BTreeMap<u64, densecap::ImageRegions> = BTreeMap::new();
            for r in regions {
                let image = by_image
                    .entry(r.image_id)
                    .or_insert_with(|| densecap::ImageRegions { truths: Vec::new(), detections: Vec::new() });
                image.truths.push(densecap::Truth { bbox: r.region.0, caption: r.caption.clone() });
                if let Some(p) = answer(r).filter(|p| p.skipped.is_none()) {
                    image.detections.push(densecap::Detection {
                        bbox: r.region.0,
                        score: p.score,
                        caption: p.caption.clone(),
                    });
                }
            }
            let images: Vec<densecap::ImageRegions> = by_image.into_values().collect();
            let jar = meteor_jar()?;
            let report = densecap::dense_cap_map(&images, |records| {
                meteor::Meteor::start(&jar)?.score(records).map(|s| s.segments)
            })?;
            metrics.insert("mAP".into(), 100.0 * report.map);
            metrics.insert("det_mAP".into(), 100.0 * report.det_map);
        }
        Task::Ovad => {
            let n = dataset.attributes.len();
            let scores: Vec<Vec<f64>> =
                regions.iter().map(|r| answer(r).map_or(vec![0.0; n], |p| p.attributes.clone())).collect();
            let labels: Vec<Vec<i8>> =
                regions.iter().map(|r| r.attribute_labels.clone().unwrap_or_else(|| vec![-1; n])).collect();
            let freq: Vec<ovad::FreqSet> = dataset.attributes.iter().map(|a| a.freq_set).collect();
            let report = ovad::ovad_report(&ovad::attribute_ap(&scores, &labels), &freq);
            let groups =
                [("mAP", report.map_all), ("head", report.head), ("medium", report.medium), ("tail", report.tail)];
            for (name, value) in groups {
                if let Some(value) = value {
                    metrics.insert(name.into(), value);
                }
            }
        }
        Task::Coco => {
            let right = regions
                .iter()
                .filter(|r| {
                    let truth = r.category.as_deref().unwrap_or(&r.caption);
                    answer(r).and_then(|p| p.class.as_deref()).is_some_and(|c| c.eq_ignore_ascii_case(truth))
                })
                .count();
            metrics.insert("accuracy".into(), 100.0 * right as f64 / regions.len().max(1) as f64);
        }
    }
    let skipped = regions.iter().filter(|r| answer(r).is_none_or(|p| p.skipped.is_some())).count();
    Ok(Scores { task: task.name(), regions: regions.len(), skipped, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmentation_extents() {
        let polygon = serde_json::json!([[10.0, 20.0, 10.0, 220.5, 110.0, 220.5, 110.0, 20.0]]);
        assert_eq!(segmentation_box(&polygon).unwrap(), Some([10.0, 20.0, 110.0, 220.5]));
        // A 4×3 mask (height 4), foreground at column 1 rows 1–2 and column 2 row 0.
        let rle = serde_json::json!({"size": [4, 3], "counts": [5, 2, 1, 1, 3]});
        assert_eq!(segmentation_box(&rle).unwrap(), Some([1.0, 0.0, 3.0, 3.0]));
        assert_eq!(segmentation_box(&serde_json::json!([])).unwrap(), None);
    }

    #[test]
    fn compressed_rle_counts() {
        // Counts 5, 2, 1, 1, 3: the fourth on are differences to the count two before
        // (1 - 2 = -1, 3 - 1 = 2), each 5-bit group offset by 48.
        let encoded: String = [5i64, 2, 1, -1, 2].iter().map(|&d| char::from((48 + (d & 0x1f)) as u8)).collect();
        assert_eq!(decode_rle_counts(&encoded).unwrap(), vec![5, 2, 1, 1, 3]);
        assert!(decode_rle_counts("\u{7f}").is_err());
    }
}
