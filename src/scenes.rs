//! The "shapes" world: pictures of flat objects (five shapes, eleven colors, three patterns) on
//! varied backgrounds, with what DynRefer should say about each object (caption, tags,
//! attributes, class) and the vocabulary files in the official formats, so that a model trained
//! on it goes through the same converter, bundle and page as the real one.
//!
//! The rules are fixed, so that anyone can draw test pictures for a model trained here:
//! * a scene holds 1–6 objects; each has a shape, a color (each channel jittered by up to ±20)
//!   and a pattern (plain, stripes in any direction, or dots, six to nine periods across the
//!   object); pattern marks are the object's color at 45 % brightness, (110, 110, 110) on black;
//! * an object's size (the diameter of the circle it fits in) is 6–60 % of the picture's short
//!   side and never under 24 pixels, so that its pattern stays visible; any rotation; later
//!   objects may hide up to 30 % of earlier ones, never of one of the same color;
//! * backgrounds are solid, gradient, noise, stripes or texture, in any color far enough from the
//!   objects' colors to see them; edges are antialiased or hard; pictures are 200–1200 pixels a
//!   side, of any aspect, saved as JPEG of quality 60–95;
//! * an object's box is its tight box, each side moved by up to 10 % of the object's size.

use std::path::Path;

use image::RgbImage;
use serde::Serialize;

pub const SHAPES: [&str; 5] = ["circle", "square", "triangle", "star", "cross"];

pub const COLORS: [(&str, [u8; 3]); 11] = [
    ("red", [220, 40, 40]),
    ("orange", [245, 140, 30]),
    ("yellow", [240, 220, 40]),
    ("green", [50, 170, 60]),
    ("blue", [40, 80, 220]),
    ("purple", [130, 50, 180]),
    ("pink", [245, 150, 190]),
    ("brown", [130, 80, 40]),
    ("black", [25, 25, 25]),
    ("white", [245, 245, 245]),
    ("gray", [128, 128, 128]),
];

pub const PATTERNS: [&str; 3] = ["plain", "striped", "dotted"];

/// The annotation file `dynrefer scenes` writes beside the pictures.
pub const ANNOTATIONS: &str = "annotations.jsonl";

/// The tag list in RAM's format: colors, shapes, then the patterns that show (plain is no tag).
pub fn tag_list() -> Vec<String> {
    let colors = COLORS.iter().map(|(c, _)| c.to_string());
    let shapes = SHAPES.iter().map(|s| s.to_string());
    colors.chain(shapes).chain(PATTERNS[1..].iter().map(|p| p.to_string())).collect()
}

/// The attribute names, OVAD style (`type:value`).
pub fn attribute_list() -> Vec<String> {
    let colors = COLORS.iter().map(|(c, _)| format!("color:{c}"));
    colors.chain(PATTERNS.iter().map(|p| format!("pattern:{p}"))).collect()
}

/// `ovad2000.json`'s format: each attribute is a "has" attribute of its type ("the red color").
pub fn ovad_json() -> serde_json::Value {
    let attributes: Vec<serde_json::Value> = attribute_list()
        .iter()
        .enumerate()
        .map(|(id, name)| {
            let kind = name.split(':').next().unwrap_or_default();
            serde_json::json!({
                "id": id, "name": name, "type": kind, "parent_type": kind, "is_has_att": "has", "freq_set": "head",
            })
        })
        .collect();
    serde_json::json!({ "info": { "description": "the shapes world's attributes, in OVAD's format" }, "attributes": attributes })
}

/// Writes `ram_tag_list.txt`, `ovad2000.json` and `coco.json` (the class list) into `dir`.
pub fn write_vocabularies(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("ram_tag_list.txt"), tag_list().join("\n") + "\n")?;
    std::fs::write(dir.join("ovad2000.json"), serde_json::to_string_pretty(&ovad_json()).expect("JSON"))?;
    std::fs::write(dir.join("coco.json"), serde_json::to_string(&SHAPES).expect("JSON"))
}

/// SplitMix64: small and the same on every platform, so that a seed always draws the same scenes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn color(&mut self) -> [f64; 3] {
        [0; 3].map(|_| self.range(0.0, 255.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Plain,
    Striped,
    Dotted,
}

impl Shape {
    const ALL: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star, Shape::Cross];

    pub fn name(self) -> &'static str {
        SHAPES[self as usize]
    }

    /// The outline inside the unit circle, unrotated; `None` for the circle itself.
    fn outline(self) -> Option<Vec<[f64; 2]>> {
        let polar = |r: f64, degrees: f64| {
            let a = degrees.to_radians();
            [r * a.cos(), r * a.sin()]
        };
        match self {
            Shape::Circle => None,
            Shape::Square => Some((0..4).map(|i| polar(1.0, 45.0 + 90.0 * i as f64)).collect()),
            Shape::Triangle => Some((0..3).map(|i| polar(1.0, -90.0 + 120.0 * i as f64)).collect()),
            Shape::Star => {
                Some((0..10).map(|i| polar(if i % 2 == 0 { 1.0 } else { 0.45 }, -90.0 + 36.0 * i as f64)).collect())
            }
            Shape::Cross => {
                // a plus sign whose arm ends touch the unit circle
                let (w, l) = (0.3, (1.0f64 - 0.09).sqrt());
                let arm = [[w, w], [l, w], [l, -w], [w, -w]];
                Some((0..4).flat_map(|q| arm.map(|[x, y]| rotate([x, y], -90.0f64.to_radians() * q as f64))).collect())
            }
        }
    }
}

impl Pattern {
    const ALL: [Pattern; 3] = [Pattern::Plain, Pattern::Striped, Pattern::Dotted];

    pub fn name(self) -> &'static str {
        PATTERNS[self as usize]
    }
}

fn rotate([x, y]: [f64; 2], angle: f64) -> [f64; 2] {
    let (s, c) = angle.sin_cos();
    [c * x - s * y, s * x + c * y]
}

/// Even-odd rule: whether `p` is inside the closed polygon.
fn inside_polygon(polygon: &[[f64; 2]], [x, y]: [f64; 2]) -> bool {
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let ([xi, yi], [xj, yj]) = (polygon[i], polygon[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// One object of a scene.
#[derive(Clone, Debug)]
pub struct Object {
    pub shape: Shape,
    /// Index into [`COLORS`].
    pub color: usize,
    pub pattern: Pattern,
    /// The jittered color it is painted in.
    pub rgb: [u8; 3],
    pub center: [f64; 2],
    /// Half its size: the radius of the circle it fits in.
    pub radius: f64,
    pub angle: f64,
    /// Pattern direction, period (pixels) and phase.
    pattern_angle: f64,
    period: f64,
    phase: [f64; 2],
}

impl Object {
    fn outline(&self) -> Option<Vec<[f64; 2]>> {
        let to_image = |p: [f64; 2]| {
            let [x, y] = rotate(p, self.angle);
            [self.center[0] + self.radius * x, self.center[1] + self.radius * y]
        };
        self.shape.outline().map(|o| o.into_iter().map(to_image).collect())
    }

    /// The tight box `[x1, y1, x2, y2]` in image pixels.
    pub fn tight_box(&self) -> [f64; 4] {
        let [cx, cy] = self.center;
        match self.outline() {
            None => [cx - self.radius, cy - self.radius, cx + self.radius, cy + self.radius],
            Some(points) => points.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, [x, y]| {
                [b[0].min(*x), b[1].min(*y), b[2].max(*x), b[3].max(*y)]
            }),
        }
    }

    pub fn color_name(&self) -> &'static str {
        COLORS[self.color].0
    }

    /// `a red star`, `an orange circle`, `a blue striped square`.
    pub fn caption(&self) -> String {
        let mut words = vec![self.color_name()];
        if self.pattern != Pattern::Plain {
            words.push(self.pattern.name());
        }
        words.push(self.shape.name());
        let phrase = words.join(" ");
        let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {phrase}")
    }

    /// The color, the shape and the pattern unless plain, in tag-list order.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = vec![self.color_name().to_string(), self.shape.name().to_string()];
        if self.pattern != Pattern::Plain {
            tags.push(self.pattern.name().to_string());
        }
        tags
    }

    pub fn attributes(&self) -> Vec<String> {
        vec![format!("color:{}", self.color_name()), format!("pattern:{}", self.pattern.name())]
    }

    fn mark_rgb(&self) -> [f64; 3] {
        if COLORS[self.color].0 == "black" { [110.0; 3] } else { self.rgb.map(|c| f64::from(c) * 0.45) }
    }

    /// Whether the pattern marks point `p` (inside the object).
    fn marked(&self, p: [f64; 2]) -> bool {
        let [u, v] = rotate(p, -self.pattern_angle).map(|c| c / self.period);
        match self.pattern {
            Pattern::Plain => false,
            Pattern::Striped => (u + self.phase[0]).rem_euclid(1.0) < 0.5,
            Pattern::Dotted => {
                let (du, dv) = ((u + self.phase[0]).rem_euclid(1.0) - 0.5, (v + self.phase[1]).rem_euclid(1.0) - 0.5);
                du * du + dv * dv < 0.3 * 0.3
            }
        }
    }
}

/// What the object puts on the pixels of its bounding rectangle: coverage and color.
struct Raster {
    x0: usize,
    y0: usize,
    width: usize,
    /// Per pixel: coverage in [0, 1] and the covered samples' mean color times coverage.
    coverage: Vec<f32>,
    paint: Vec<[f32; 3]>,
}

impl Raster {
    fn draw(object: &Object, image_size: [usize; 2], antialias: bool) -> Raster {
        let b = object.tight_box();
        let x0 = (b[0].floor().max(0.0)) as usize;
        let y0 = (b[1].floor().max(0.0)) as usize;
        let x1 = (b[2].ceil() as usize).min(image_size[0]);
        let y1 = (b[3].ceil() as usize).min(image_size[1]);
        let (width, height) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
        let outline = object.outline();
        let inside = |p: [f64; 2]| match &outline {
            Some(polygon) => inside_polygon(polygon, p),
            None => {
                let (dx, dy) = (p[0] - object.center[0], p[1] - object.center[1]);
                dx * dx + dy * dy <= object.radius * object.radius
            }
        };
        let n = if antialias { 4 } else { 1 };
        let body = object.rgb.map(f64::from);
        let mark = object.mark_rgb();
        let mut coverage = vec![0f32; width * height];
        let mut paint = vec![[0f32; 3]; width * height];
        for y in 0..height {
            for x in 0..width {
                let (mut count, mut sum) = (0, [0f64; 3]);
                for j in 0..n {
                    for i in 0..n {
                        let p = [
                            (x0 + x) as f64 + (i as f64 + 0.5) / n as f64,
                            (y0 + y) as f64 + (j as f64 + 0.5) / n as f64,
                        ];
                        if inside(p) {
                            count += 1;
                            let c = if object.marked(p) { mark } else { body };
                            (0..3).for_each(|k| sum[k] += c[k]);
                        }
                    }
                }
                let samples = (n * n) as f64;
                coverage[y * width + x] = (count as f64 / samples) as f32;
                paint[y * width + x] = sum.map(|s| (s / samples) as f32);
            }
        }
        Raster { x0, y0, width, coverage, paint }
    }

    /// The pixels it owns (at least half covered), as image indices.
    fn owned(&self, image_width: usize) -> impl Iterator<Item = usize> + '_ {
        self.coverage
            .iter()
            .enumerate()
            .filter(|(_, c)| **c >= 0.5)
            .map(move |(i, _)| (self.y0 + i / self.width) * image_width + self.x0 + i % self.width)
    }
}

/// The background's look; its reference colors are those the objects must stand out from.
enum Background {
    Solid([f64; 3]),
    Gradient([f64; 3], [f64; 3], f64),
    Noise([f64; 3], f64),
    Stripes([f64; 3], [f64; 3], f64, f64),
    Texture([f64; 3], [f64; 3], f64),
}

impl Background {
    fn random(rng: &mut Rng) -> Background {
        match rng.below(5) {
            0 => Background::Solid(rng.color()),
            1 => Background::Gradient(rng.color(), rng.color(), rng.range(0.0, std::f64::consts::TAU)),
            2 => Background::Noise(rng.color(), rng.range(8.0, 40.0)),
            3 => Background::Stripes(
                rng.color(),
                rng.color(),
                rng.range(0.0, std::f64::consts::PI),
                rng.range(8.0, 80.0),
            ),
            _ => Background::Texture(rng.color(), rng.color(), rng.range(16.0, 96.0)),
        }
    }

    fn colors(&self) -> Vec<[f64; 3]> {
        match self {
            Background::Solid(c) | Background::Noise(c, _) => vec![*c],
            Background::Gradient(a, b, _) | Background::Stripes(a, b, ..) | Background::Texture(a, b, _) => {
                vec![*a, *b, lerp(*a, *b, 0.5)]
            }
        }
    }

    fn paint(&self, rng: &mut Rng, width: usize, height: usize) -> Vec<[f64; 3]> {
        let (w, h) = (width as f64, height as f64);
        let mut out = Vec::with_capacity(width * height);
        match self {
            Background::Solid(c) => out.resize(width * height, *c),
            Background::Gradient(a, b, angle) => {
                let d = [angle.cos(), angle.sin()];
                let reach = (w * d[0]).abs() + (h * d[1]).abs();
                let low = (0.0f64).min(w * d[0]) + (0.0f64).min(h * d[1]);
                for y in 0..height {
                    for x in 0..width {
                        let t = ((x as f64 * d[0] + y as f64 * d[1]) - low) / reach;
                        out.push(lerp(*a, *b, t));
                    }
                }
            }
            Background::Noise(c, amplitude) => {
                for _ in 0..width * height {
                    let shade = rng.range(-amplitude, *amplitude);
                    out.push([0, 1, 2].map(|k| c[k] + shade + rng.range(-0.25, 0.25) * amplitude));
                }
            }
            Background::Stripes(a, b, angle, period) => {
                for y in 0..height {
                    for x in 0..width {
                        let u = rotate([x as f64, y as f64], -angle)[0] / period;
                        out.push(if u.rem_euclid(1.0) < 0.5 { *a } else { *b });
                    }
                }
            }
            Background::Texture(a, b, cell) => {
                // two octaves of value noise
                let coarse = ValueNoise::new(rng, w / cell, h / cell);
                let fine = ValueNoise::new(rng, 3.0 * w / cell, 3.0 * h / cell);
                for y in 0..height {
                    for x in 0..width {
                        let (u, v) = (x as f64 / w, y as f64 / h);
                        out.push(lerp(*a, *b, 0.7 * coarse.at(u, v) + 0.3 * fine.at(u, v)));
                    }
                }
            }
        }
        out
    }
}

fn lerp(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [0, 1, 2].map(|k| a[k] + (b[k] - a[k]) * t)
}

/// Random values on a grid, interpolated bilinearly.
struct ValueNoise {
    cols: usize,
    rows: usize,
    values: Vec<f64>,
}

impl ValueNoise {
    fn new(rng: &mut Rng, cells_x: f64, cells_y: f64) -> ValueNoise {
        let (cols, rows) = (cells_x.ceil() as usize + 2, cells_y.ceil() as usize + 2);
        ValueNoise { cols, rows, values: (0..cols * rows).map(|_| rng.unit()).collect() }
    }

    /// At `(u, v)` in [0, 1]² of the picture.
    fn at(&self, u: f64, v: f64) -> f64 {
        let (x, y) = (u * (self.cols - 2) as f64, v * (self.rows - 2) as f64);
        let (i, j) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - i as f64, y - j as f64);
        let g = |i: usize, j: usize| self.values[j.min(self.rows - 1) * self.cols + i.min(self.cols - 1)];
        let top = g(i, j) * (1.0 - fx) + g(i + 1, j) * fx;
        let bottom = g(i, j + 1) * (1.0 - fx) + g(i + 1, j + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>().sqrt()
}

/// How far an object's color must be from each background color (RGB distance).
const MIN_CONTRAST: f64 = 90.0;
/// The most of an object later objects may hide.
const MAX_HIDDEN: f64 = 0.3;
/// The smallest object, in pixels, so that its pattern stays visible.
const MIN_OBJECT_PX: f64 = 24.0;

/// One generated picture and its objects, in drawing order.
pub struct Scene {
    pub image: RgbImage,
    pub objects: Vec<Object>,
    /// Each object's box: its tight box with each side moved by up to 10 % of its size.
    pub boxes: Vec<[f64; 4]>,
    pub jpeg_quality: u8,
}

/// One line of `annotations.jsonl`.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Annotation {
    pub image: String,
    #[serde(rename = "box")]
    pub region: [f64; 4],
    pub caption: String,
    pub tags: Vec<String>,
    pub attributes: Vec<String>,
    pub class: String,
}

impl Scene {
    /// Scene number `index` of the world drawn from `seed`: each scene has its own stream, so
    /// scenes can be drawn in any order and in parallel.
    pub fn generate(seed: u64, index: u64) -> Scene {
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64();
        let (width, height) = (200 + rng.below(1001), 200 + rng.below(1001));
        let background = Background::random(&mut rng);
        let mut canvas = background.paint(&mut rng, width, height);
        let antialias = rng.chance(0.5);
        let short = width.min(height) as f64;
        let wanted = 1 + rng.below(6);
        let mut objects: Vec<Object> = Vec::new();
        // per pixel: the object that owns it (drawn last over it), and each object's own area
        let mut owner: Vec<u16> = vec![u16::MAX; width * height];
        let (mut area, mut visible): (Vec<usize>, Vec<usize>) = (vec![], vec![]);
        for _ in 0..wanted {
            let Some((object, raster)) =
                place(&mut rng, &background, &objects, &owner, &area, &visible, [width, height], short, antialias)
            else {
                continue;
            };
            let index = objects.len() as u16;
            let mut own = 0;
            for pixel in raster.owned(width) {
                if let Some(v) = visible.get_mut(owner[pixel] as usize) {
                    *v -= 1;
                }
                owner[pixel] = index;
                own += 1;
            }
            for (i, (c, p)) in raster.coverage.iter().zip(&raster.paint).enumerate() {
                let pixel = (raster.y0 + i / raster.width) * width + raster.x0 + i % raster.width;
                let under = canvas[pixel];
                canvas[pixel] = [0, 1, 2].map(|k| under[k] * f64::from(1.0 - c) + f64::from(p[k]));
            }
            area.push(own);
            visible.push(own);
            objects.push(object);
        }
        let pixels: Vec<u8> = canvas.iter().flat_map(|c| c.map(|v| v.round().clamp(0.0, 255.0) as u8)).collect();
        let image = RgbImage::from_raw(width as u32, height as u32, pixels).expect("a canvas of its size");
        let (w, h) = (width as f64, height as f64);
        let boxes = objects
            .iter()
            .map(|o| {
                let b = o.tight_box();
                let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
                let mut moved = [0, 1, 2, 3].map(|i| b[i] + rng.range(-0.1, 0.1) * if i % 2 == 0 { bw } else { bh });
                moved = [moved[0].max(0.0), moved[1].max(0.0), moved[2].min(w), moved[3].min(h)];
                moved.map(|v| (v * 10.0).round() / 10.0)
            })
            .collect();
        let jpeg_quality = 60 + rng.below(36) as u8;
        Scene { image, objects, boxes, jpeg_quality }
    }

    pub fn jpeg(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, self.jpeg_quality);
        self.image.write_with_encoder(encoder).expect("an RGB image encodes as JPEG");
        out
    }

    /// The annotation lines of this scene, whose picture is saved as `image`.
    pub fn annotations(&self, image: &str) -> Vec<Annotation> {
        self.objects
            .iter()
            .zip(&self.boxes)
            .map(|(o, b)| Annotation {
                image: image.to_string(),
                region: *b,
                caption: o.caption(),
                tags: o.tags(),
                attributes: o.attributes(),
                class: o.shape.name().to_string(),
            })
            .collect()
    }
}

/// Draws a new object that fits the scene's rules, or gives up after some tries.
#[allow(clippy::too_many_arguments)]
fn place(
    rng: &mut Rng,
    background: &Background,
    objects: &[Object],
    owner: &[u16],
    area: &[usize],
    visible: &[usize],
    [width, height]: [usize; 2],
    short: f64,
    antialias: bool,
) -> Option<(Object, Raster)> {
    let shape = Shape::ALL[rng.below(5)];
    let pattern = Pattern::ALL[rng.below(3)];
    let backdrop = background.colors();
    let (color, rgb) = (0..40).find_map(|_| {
        let color = rng.below(COLORS.len());
        let rgb = COLORS[color].1.map(|c| (f64::from(c) + rng.range(-20.0, 20.0)).round().clamp(0.0, 255.0) as u8);
        let far = backdrop.iter().all(|b| distance(rgb.map(f64::from), *b) >= MIN_CONTRAST);
        far.then_some((color, rgb))
    })?;
    let size = rng.range(0.06, 0.6) * short;
    let radius = size.max(MIN_OBJECT_PX).min(short * 0.95) / 2.0;
    // six to nine stripes or rows of dots across the object: fine enough to read as a texture in
    // each patch the model sees of it, coarse enough to survive JPEG on the smallest objects
    let period = 2.0 * radius / rng.range(6.0, 9.0);
    for _ in 0..30 {
        let object = Object {
            shape,
            color,
            pattern,
            rgb,
            center: [0.0; 2],
            radius,
            angle: rng.range(0.0, std::f64::consts::TAU),
            pattern_angle: rng.range(0.0, std::f64::consts::PI),
            period: period.max(4.0),
            phase: [rng.unit(), rng.unit()],
        };
        // the whole object inside the picture
        let b = object.tight_box();
        let (ox, oy) = (b[0], b[1]);
        let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
        if bw + 2.0 > width as f64 || bh + 2.0 > height as f64 {
            return None;
        }
        let x = rng.range(1.0, width as f64 - bw - 1.0);
        let y = rng.range(1.0, height as f64 - bh - 1.0);
        let object = Object { center: [object.center[0] + x - ox, object.center[1] + y - oy], ..object };
        let raster = Raster::draw(&object, [width, height], antialias);
        let mut hidden = vec![0usize; objects.len()];
        for pixel in raster.owned(width) {
            if let Some(h) = hidden.get_mut(owner[pixel] as usize) {
                *h += 1;
            }
        }
        let fits = hidden.iter().enumerate().all(|(i, &h)| {
            h == 0 || (objects[i].color != color && (visible[i] - h) as f64 >= (1.0 - MAX_HIDDEN) * area[i] as f64)
        });
        if fits {
            return Some((object, raster));
        }
    }
    None
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    path: String,
    source: std::io::Error,
}

/// Writes scenes `0..count` of `seed` as `scene-NNNNNN.jpg` into `out`, with
/// [`ANNOTATIONS`] and the vocabulary files; `progress` hears the number of scenes done.
pub fn write_scenes(count: usize, seed: u64, out: &Path, progress: impl Fn(usize) + Sync) -> Result<usize, WriteError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| WriteError { path, source }
    };
    std::fs::create_dir_all(out).map_err(err(out))?;
    write_vocabularies(out).map_err(err(out))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let indices: Vec<usize> = (0..count).collect();
    let lines = crate::views::par::map(&indices, |&i| -> Result<Vec<Annotation>, WriteError> {
        let scene = Scene::generate(seed, i as u64);
        let name = format!("scene-{i:06}.jpg");
        let path = out.join(&name);
        std::fs::write(&path, scene.jpeg()).map_err(err(&path))?;
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        Ok(scene.annotations(&name))
    });
    let mut text = String::new();
    let mut objects = 0;
    for scene in lines {
        for line in scene? {
            text += &serde_json::to_string(&line).expect("JSON");
            text.push('\n');
            objects += 1;
        }
    }
    let path = out.join(ANNOTATIONS);
    std::fs::write(&path, text).map_err(err(&path))?;
    Ok(objects)
}

/// Reads an annotation file, naming the line that is wrong.
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white object of radius 80 centred in a 200-pixel square, turned by 0.3 rad.
    fn object(shape: Shape, color: usize, pattern: Pattern) -> Object {
        Object {
            shape,
            color,
            pattern,
            rgb: [255; 3],
            center: [100.0, 100.0],
            radius: 80.0,
            angle: 0.3,
            pattern_angle: 0.0,
            period: 6.0,
            phase: [0.0; 2],
        }
    }

    #[test]
    fn captions_follow_the_rules() {
        assert_eq!(object(Shape::Star, 0, Pattern::Plain).caption(), "a red star");
        assert_eq!(object(Shape::Circle, 1, Pattern::Plain).caption(), "an orange circle");
        assert_eq!(object(Shape::Square, 4, Pattern::Striped).caption(), "a blue striped square");
        assert_eq!(object(Shape::Cross, 3, Pattern::Dotted).tags(), ["green", "cross", "dotted"]);
        assert_eq!(object(Shape::Cross, 3, Pattern::Dotted).attributes(), ["color:green", "pattern:dotted"]);
    }

    #[test]
    fn the_same_seed_draws_the_same_scene() {
        let (a, b) = (Scene::generate(5, 3), Scene::generate(5, 3));
        assert_eq!(a.image, b.image);
        assert_eq!(a.boxes, b.boxes);
        assert_ne!(Scene::generate(6, 3).image, a.image);
    }

    #[test]
    fn shapes_fill_their_circle_as_drawn() {
        // the shapes' areas relative to the unit circle: a check on the outlines
        for (shape, share) in
            [(Shape::Circle, 1.0), (Shape::Square, 0.64), (Shape::Triangle, 0.41), (Shape::Cross, 0.61)]
        {
            let o = object(shape, 0, Pattern::Plain);
            let r = Raster::draw(&o, [200, 200], true);
            let covered: f32 = r.coverage.iter().sum();
            let got = f64::from(covered) / (std::f64::consts::PI * 80.0 * 80.0);
            assert!((got - share).abs() < 0.03, "{shape:?}: {got}");
        }
    }
}
