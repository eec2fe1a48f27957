//! RoIAlign with torchvision's semantics (`aligned=False`), as a sampling
//! matrix: each output bin is a fixed weighted sum of feature-map cells, so for the few boxes
//! DynRefer needs (one per view) the pooled features are `matrix · features`, one matmul on any
//! backend. Coordinates are computed in `f32`, as torchvision's kernel does for float features.

/// Geometry of one RoIAlign: a `height` x `width` feature map pooled to `output` x `output` bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiAlignConfig {
    pub height: usize,
    pub width: usize,
    pub output: usize,
    /// Feature-map cells per image pixel (1 / patch size for a ViT).
    pub spatial_scale: f32,
    /// Samples per bin side (DynRefer uses 2). torchvision's adaptive 0 is not offered: 0 counts as 1.
    pub sampling_ratio: usize,
}

/// Bilinear taps of one sample: `(cell index, weight)`, none when the sample is off the map.
fn sample_taps(y: f32, x: f32, height: usize, width: usize) -> Option<[(usize, f32); 4]> {
    let (h, w) = (height as f32, width as f32);
    if y < -1.0 || y > h || x < -1.0 || x > w {
        return None;
    }
    let (y, x) = (y.max(0.0), x.max(0.0));
    let axis = |v: f32, size: usize| {
        let low = v as usize;
        if low >= size - 1 { (size - 1, size - 1, 0.0) } else { (low, low + 1, v - low as f32) }
    };
    let (y0, y1, ly) = axis(y, height);
    let (x0, x1, lx) = axis(x, width);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Some([
        (y0 * width + x0, hy * hx),
        (y0 * width + x1, hy * lx),
        (y1 * width + x0, ly * hx),
        (y1 * width + x1, ly * lx),
    ])
}

/// The sampling matrix of `region` (`[x1, y1, x2, y2]` in image pixels), row-major
/// `[output * output, height * width]`: bins in row-major order (y, then x), cells likewise.
pub fn roi_align_matrix(region: [f32; 4], cfg: &RoiAlignConfig) -> Vec<f32> {
    let [x1, y1, x2, y2] = region.map(|v| v * cfg.spatial_scale);
    let bin_w = (x2 - x1).max(1.0) / cfg.output as f32;
    let bin_h = (y2 - y1).max(1.0) / cfg.output as f32;
    let g = cfg.sampling_ratio.max(1);
    let share = 1.0 / (g * g) as f32;
    let cells = cfg.height * cfg.width;
    let mut m = vec![0.0f32; cfg.output * cfg.output * cells];
    for ph in 0..cfg.output {
        for pw in 0..cfg.output {
            let row = &mut m[(ph * cfg.output + pw) * cells..][..cells];
            for iy in 0..g {
                let y = y1 + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / g as f32;
                for ix in 0..g {
                    let x = x1 + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / g as f32;
                    for (cell, weight) in sample_taps(y, x, cfg.height, cfg.width).into_iter().flatten() {
                        row[cell] += weight * share;
                    }
                }
            }
        }
    }
    m
}
