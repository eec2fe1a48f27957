//! Region boxes: parsing, validation, the official widening of thin boxes, the candidate views and
//! the integer crop boxes.

use std::fmt;
use std::str::FromStr;

/// A region in image pixels, `[x1, y1, x2, y2]`, as the person drew it (fractions allowed).
/// Serialises as its four numbers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RegionBox(pub [f64; 4]);

/// Why a box given as text or numbers was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoxError {
    #[error("expected four comma-separated numbers X1,Y1,X2,Y2, got {0:?}")]
    Malformed(String),
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("coordinates must be finite, got {0}")]
    NotFinite(RegionBox),
    #[error("{0} has zero or negative area: it needs x1 < x2 and y1 < y2")]
    Empty(RegionBox),
    #[error(
        "{region} is outside the {width}x{height} image: it needs 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}"
    )]
    OutsideImage { region: RegionBox, width: u32, height: u32 },
}

impl fmt::Display for RegionBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [x1, y1, x2, y2] = self.0;
        write!(f, "box {x1},{y1},{x2},{y2}")
    }
}

impl FromStr for RegionBox {
    type Err = BoxError;

    fn from_str(text: &str) -> Result<Self, BoxError> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(BoxError::Malformed(text.to_owned()));
        }
        let mut coords = [0.0; 4];
        for (c, p) in coords.iter_mut().zip(&parts) {
            *c = p.parse::<f64>().map_err(|_| BoxError::NotANumber((*p).to_owned()))?;
        }
        let region = RegionBox(coords);
        if coords.iter().any(|c| !c.is_finite()) {
            return Err(BoxError::NotFinite(region));
        }
        Ok(region)
    }
}

impl RegionBox {
    /// Several boxes as the widget's `boxes` attribute writes them: `x1,y1,x2,y2;x1,y1,x2,y2;…`
    /// (empty entries are skipped). Each is checked as [`FromStr`] does; the error names the box.
    pub fn parse_list(text: &str) -> Result<Vec<RegionBox>, String> {
        text.split(';')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| b.parse::<RegionBox>().map_err(|e| format!("box {b:?}: {e}")))
            .collect()
    }

    /// The box spanned by two corners, in either order.
    pub fn spanning(a: [f64; 2], b: [f64; 2]) -> RegionBox {
        RegionBox([a[0].min(b[0]), a[1].min(b[1]), a[0].max(b[0]), a[1].max(b[1])])
    }

    /// A box a third of the image's sides, in its middle, on whole pixels.
    pub fn middle_of(width: u32, height: u32) -> RegionBox {
        let (w, h) = (f64::from(width), f64::from(height));
        RegionBox([w / 3.0, h / 3.0, 2.0 * w / 3.0, 2.0 * h / 3.0].map(f64::round))
    }

    /// The box as the page writes it: `x1,y1,x2,y2` to a tenth of a pixel.
    pub fn to_text(self) -> String {
        self.0.map(|v| format!("{}", (v * 10.0).round() / 10.0)).join(",")
    }

    pub fn width(self) -> f64 {
        self.0[2] - self.0[0]
    }

    pub fn height(self) -> f64 {
        self.0[3] - self.0[1]
    }

    pub fn area(self) -> f64 {
        self.width() * self.height()
    }

    /// Whether the point `at` lies in the box (its edges included).
    pub fn contains(self, at: [f64; 2]) -> bool {
        let [x1, y1, x2, y2] = self.0;
        x1 <= at[0] && at[0] <= x2 && y1 <= at[1] && at[1] <= y2
    }

    /// The box moved by `d`, as far as the image allows: a box that touches an edge stops there.
    /// On an axis where the box is wider than the image (it can be, restored or typed before
    /// the photo changed) it does not move at all.
    pub fn nudged(self, d: [f64; 2], width: u32, height: u32) -> RegionBox {
        let [x1, y1, x2, y2] = self.0;
        let dx = shift_within(d[0], x1, x2, f64::from(width));
        let dy = shift_within(d[1], y1, y2, f64::from(height));
        RegionBox([x1 + dx, y1 + dy, x2 + dx, y2 + dy])
    }

    /// The box with its right and bottom sides moved by `d`: at least a pixel wide and high where
    /// the image leaves room for that, never past the image's right or bottom edge, and never
    /// past its own left or top side.
    pub fn resized(self, d: [f64; 2], width: u32, height: u32) -> RegionBox {
        let [x1, y1, x2, y2] = self.0;
        let side = |lo: f64, hi: f64, d: f64, limit: f64| {
            let max = limit.max(hi);
            let min = (lo + 1.0).min(max);
            (hi + d).max(min).min(max)
        };
        RegionBox([x1, y1, side(x1, x2, d[0], f64::from(width)), side(y1, y2, d[1], f64::from(height))])
    }

    /// Checks the box against an image of `width` x `height` pixels.
    pub fn validate(self, width: u32, height: u32) -> Result<Self, BoxError> {
        let [x1, y1, x2, y2] = self.0;
        if self.0.iter().any(|c| !c.is_finite()) {
            return Err(BoxError::NotFinite(self));
        }
        if x1 >= x2 || y1 >= y2 {
            return Err(BoxError::Empty(self));
        }
        if x1 < 0.0 || y1 < 0.0 || x2 > f64::from(width) || y2 > f64::from(height) {
            return Err(BoxError::OutsideImage { region: self, width, height });
        }
        Ok(self)
    }
}

/// How far a span `lo..hi` may move by `d` and stay in `0..limit`: `d`, or less toward an edge;
/// nothing when the span does not fit at all.
fn shift_within(d: f64, lo: f64, hi: f64, limit: f64) -> f64 {
    let (least, most) = (-lo, limit - hi);
    if least > most { 0.0 } else { d.max(least).min(most) }
}

/// The official degenerate-side fix (the polygon → box step): a side of at most one pixel is
/// widened to exactly one pixel, in double precision, then the box is rounded to `f32`.
pub(crate) fn widen_thin(region: RegionBox, width: u32, height: u32) -> [f32; 4] {
    let [mut x1, mut y1, mut x2, mut y2] = region.0;
    let (w, h) = (f64::from(width), f64::from(height));
    if x1 >= x2 - 1.0 && x2 > 0.0 {
        x1 = x2 - 1.0;
    } else if x1 >= x2 - 1.0 && w - x1 > 0.0 {
        x2 = x1 + 1.0;
    }
    if y1 >= y2 - 1.0 && y2 > 0.0 {
        y1 = y2 - 1.0;
    } else if y1 >= y2 - 1.0 && h - y1 > 0.0 {
        y2 = y1 + 1.0;
    }
    [x1 as f32, y1 as f32, x2 as f32, y2 as f32]
}

/// The ratio of candidate `i` (0-based): `(i + 1) / 10`, as the Python double the official code uses.
pub(crate) fn candidate_ratio(i: usize, num_candidates: usize) -> f64 {
    (i + 1) as f64 / num_candidates as f64
}

/// `b + (whole - b) * ratio`, each operation rounded to `f32` (no fused multiply-add).
pub(crate) fn interpolate(b: [f32; 4], width: u32, height: u32, ratio: f64) -> [f32; 4] {
    let whole = [0.0, 0.0, width as f32, height as f32];
    let r = ratio as f32;
    std::array::from_fn(|k| b[k] + (whole[k] - b[k]) * r)
}

/// Truncates each coordinate toward zero, as `numpy.astype(int64)` does.
pub(crate) fn trunc(b: [f32; 4]) -> [i64; 4] {
    b.map(|v| v as i64)
}

/// Clips a view box to the image, then truncates it: the integer crop box.
pub(crate) fn clip_trunc(b: [f32; 4], width: u32, height: u32) -> [i64; 4] {
    let (w, h) = (width as f32, height as f32);
    trunc([b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h)])
}

/// Python's `seq[start:stop]` bounds on a sequence of `len` items (negative indices count from the
/// end; out-of-range bounds are clamped). The official hash crops without clipping, so this is how
/// its crop box reads the image.
pub(crate) fn python_slice(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let norm = |i: i64| if i < 0 { (i + len).max(0) } else { i.min(len) };
    let (a, b) = (norm(start), norm(stop));
    a as usize..b.max(a) as usize
}

/// The region's box inside a view resized to `size` x `size`: not clamped, and
/// computed in `f32` like torchvision's `resize_bounding_boxes` on an integer box.
pub(crate) fn region_in_view(region: [i64; 4], crop: [i64; 4], size: u32) -> [f32; 4] {
    let rel = [region[0] - crop[0], region[1] - crop[1], region[2] - crop[0], region[3] - crop[1]];
    let (wr, hr) = (crop[2] - crop[0], crop[3] - crop[1]);
    if wr == i64::from(size) && hr == i64::from(size) {
        return rel.map(|v| v as f32);
    }
    let sx = (f64::from(size) / wr as f64) as f32;
    let sy = (f64::from(size) / hr as f64) as f32;
    let scale = [sx, sy, sx, sy];
    std::array::from_fn(|k| ((rel[k] as f32 * scale[k]) as i64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let b: RegionBox = " 51.2,307.2, 307.2,460.8".parse().unwrap();
        assert_eq!(b.0, [51.2, 307.2, 307.2, 460.8]);
        assert!(b.validate(512, 512).is_ok());
        assert!(matches!("1,2,3".parse::<RegionBox>(), Err(BoxError::Malformed(_))));
        assert!(matches!("1,2,x,4".parse::<RegionBox>(), Err(BoxError::NotANumber(_))));
        assert!(matches!("1,2,NaN,4".parse::<RegionBox>(), Err(BoxError::NotFinite(_))));
        assert!(matches!("1,2,inf,4".parse::<RegionBox>(), Err(BoxError::NotFinite(_))));
        let b = |s: &str| s.parse::<RegionBox>().unwrap().validate(100, 50);
        assert!(matches!(b("5,5,5,9"), Err(BoxError::Empty(_))));
        assert!(matches!(b("6,5,5,9"), Err(BoxError::Empty(_))));
        assert!(matches!(b("-1,5,5,9"), Err(BoxError::OutsideImage { .. })));
        assert!(matches!(b("1,5,100.5,9"), Err(BoxError::OutsideImage { .. })));
        assert!(matches!(b("1,5,10,51"), Err(BoxError::OutsideImage { .. })));
        assert!(b("0,0,100,50").is_ok());
        assert!(b("10.4,20.7,11.1,40.2").is_ok());
    }

    #[test]
    fn parses_lists_and_writes_text() {
        let list = RegionBox::parse_list(" 1,2,3,4 ; ;5.25,6,7,8;").unwrap();
        assert_eq!(list, [RegionBox([1.0, 2.0, 3.0, 4.0]), RegionBox([5.25, 6.0, 7.0, 8.0])]);
        let err = RegionBox::parse_list("1,2,3,4;1,2,x,4").unwrap_err();
        assert_eq!(err, "box \"1,2,x,4\": \"x\" is not a number");
        assert_eq!(RegionBox([1.0, 2.25, 3.04, 400.0]).to_text(), "1,2.3,3,400");
        assert_eq!(serde_json::to_string(&RegionBox([1.0, 2.5, 3.0, 4.0])).unwrap(), "[1.0,2.5,3.0,4.0]");
    }

    #[test]
    fn spans_holds_and_middles() {
        let b = RegionBox::spanning([30.0, 5.0], [10.0, 25.0]);
        assert_eq!(b, RegionBox([10.0, 5.0, 30.0, 25.0]));
        assert_eq!((b.width(), b.height(), b.area()), (20.0, 20.0, 400.0));
        assert!(b.contains([10.0, 25.0]) && b.contains([20.0, 6.0]));
        assert!(!b.contains([9.9, 6.0]) && !b.contains([20.0, 25.1]));
        assert_eq!(RegionBox::middle_of(640, 100), RegionBox([213.0, 33.0, 427.0, 67.0]));
    }

    #[test]
    fn nudges_stay_inside_the_image() {
        let b = RegionBox([10.0, 10.0, 50.0, 40.0]);
        assert_eq!(b.nudged([-3.0, 2.0], 640, 100), RegionBox([7.0, 12.0, 47.0, 42.0]));
        // stops at the edges
        assert_eq!(b.nudged([-30.0, 100.0], 640, 100), RegionBox([0.0, 70.0, 40.0, 100.0]));
        // a box wider than the photo (typed as 0,0,700,100 on a 640-px photo) moves on no axis
        // where it does not fit, and never panics
        let wide = RegionBox([0.0, 0.0, 700.0, 100.0]);
        assert_eq!(wide.nudged([1.0, 0.0], 640, 100), wide);
        assert_eq!(wide.nudged([-10.0, -1.0], 640, 200), wide);
        assert_eq!(wide.nudged([0.0, 5.0], 640, 200), RegionBox([0.0, 5.0, 700.0, 105.0]));
    }

    #[test]
    fn resizes_stay_inside_the_image() {
        let b = RegionBox([10.0, 10.0, 50.0, 40.0]);
        assert_eq!(b.resized([5.0, -5.0], 640, 100), RegionBox([10.0, 10.0, 55.0, 35.0]));
        // at least a pixel, at most the image
        assert_eq!(b.resized([-100.0, 100.0], 640, 100), RegionBox([10.0, 10.0, 11.0, 100.0]));
        // a sliver at the right edge (half a pixel wide): Alt+← keeps it as it is
        let sliver = RegionBox([639.5, 10.0, 640.0, 50.0]);
        assert_eq!(sliver.resized([-1.0, 0.0], 640, 100), sliver);
        assert_eq!(sliver.resized([1.0, 0.0], 640, 100), sliver);
        // a box past the image (restored on a smaller photo) does not grow, and shrinks
        let wide = RegionBox([0.0, 0.0, 700.0, 100.0]);
        assert_eq!(wide.resized([1.0, 0.0], 640, 100), wide);
        assert_eq!(wide.resized([-1.0, 0.0], 640, 100), RegionBox([0.0, 0.0, 699.0, 100.0]));
        // no NaN or panic on odd input
        let r = RegionBox([5.0, 5.0, 5.5, 5.5]).resized([-10.0, -10.0], 5, 5);
        assert_eq!(r, RegionBox([5.0, 5.0, 5.5, 5.5]));
    }

    #[test]
    fn widens_thin_sides_like_the_official_code() {
        // x is 0.7 px wide: x1 = x2 - 1; y is wide enough and stays.
        assert_eq!(widen_thin(RegionBox([10.4, 20.7, 11.1, 60.2]), 451, 300), [10.1, 20.7, 11.1, 60.2]);
        // exactly one pixel: unchanged (x1 = x2 - 1 already)
        assert_eq!(widen_thin(RegionBox([0.0, 0.0, 1.0, 1.0]), 5, 5), [0.0, 0.0, 1.0, 1.0]);
        // below one pixel at the left edge: x1 goes negative, as in the official code
        assert_eq!(widen_thin(RegionBox([0.0, 2.0, 0.5, 9.0]), 5, 20), [-0.5, 2.0, 0.5, 9.0]);
    }

    #[test]
    fn candidates_round_each_step_to_f32() {
        let b = [10.1f32, 20.7, 11.1, 60.2];
        let c = interpolate(b, 451, 300, candidate_ratio(2, 10));
        let r = 0.3f64 as f32;
        assert_eq!(c[0], 10.1f32 + (0.0 - 10.1f32) * r);
        assert_eq!(c[3], 60.2f32 + (300.0 - 60.2f32) * r);
        assert_eq!(interpolate(b, 451, 300, 1.0), [0.0, 0.0, 451.0, 300.0]);
        assert_eq!(candidate_ratio(9, 10), 1.0);
        assert_eq!(candidate_ratio(2, 10).to_string(), "0.3");
    }

    #[test]
    fn python_slices() {
        assert_eq!(python_slice(2, 5, 10), 2..5);
        assert_eq!(python_slice(-2, 10, 10), 8..10);
        assert_eq!(python_slice(5, 20, 10), 5..10);
        assert_eq!(python_slice(7, 3, 10), 7..7);
        assert_eq!(python_slice(-20, 3, 10), 0..3);
    }

    #[test]
    fn clips_and_truncates() {
        assert_eq!(clip_trunc([-3.5, 2.9, 700.2, 299.99], 640, 300), [0, 2, 640, 299]);
        assert_eq!(trunc([-0.5, 0.99, 1.0, 2.5]), [0, 0, 1, 2]);
    }

    #[test]
    fn region_box_in_a_resized_view() {
        // crop 100x50 at (10, 20) -> 224: x * 2.24, y * 4.48, truncated
        let rb = region_in_view([30, 30, 60, 40], [10, 20, 110, 70], 224);
        assert_eq!(rb, [44.0, 44.0, 112.0, 89.0]);
        // already S x S: no scaling
        assert_eq!(region_in_view([5, 5, 9, 9], [0, 0, 224, 224], 224), [5.0, 5.0, 9.0, 9.0]);
    }
}
