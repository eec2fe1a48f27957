//! Results a person takes away: every region as JSON (each as the CLI's `describe` prints it,
//! with its number and box, and the photo's name and size), or the photo with the numbered boxes
//! and their captions drawn on it.

use wasm_bindgen::{Clamped, JsCast};

use super::browser::{blob_url, save_url};
use super::regions::{Photo, Region, RegionState};

/// `value` as JSON that reads as `dynrefer describe` prints it: through JSON text, so that an
/// f32 score stays `0.66`, not the f64 `0.6600000262260437`.
pub fn as_printed(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_string(value).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
}

/// The regions as one JSON document.
pub fn regions_json(photo: &Photo, regions: &[Region]) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = regions
        .iter()
        .map(|r| {
            let mut entry = match &r.state {
                RegionState::Described(d) => as_printed(&**d),
                RegionState::Failed(e) => serde_json::json!({ "error": e }),
                RegionState::Pending => serde_json::json!({ "pending": true }),
            };
            entry["number"] = r.number.into();
            entry["box"] = serde_json::json!(r.bbox);
            entry
        })
        .collect();
    serde_json::json!({
        "photo": { "name": photo.name, "width": photo.image.width(), "height": photo.image.height() },
        "regions": entries,
    })
}

fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

pub fn save_json(photo: &Photo, regions: &[Region]) -> Result<(), String> {
    let json = serde_json::to_string_pretty(&regions_json(photo, regions)).map_err(|e| e.to_string())?;
    save_url(blob_url(json.as_bytes(), "application/json")?, &format!("{}-regions.json", stem(&photo.name)))
}

/// The colour of the boxes on the page, and of the label under their text.
const BOX: &str = "#ff6b2c";
const LABEL: &str = "rgba(20, 24, 33, 0.85)";

/// The longest side of a saved picture. A photo of up to 100 megapixels can be opened; drawn at
/// its size its RGBA copy alone would take 400 MB of the page's memory, which never shrinks, and
/// more in the canvas and the PNG. A larger photo is drawn scaled down.
const MAX_PICTURE_SIDE: u32 = 4096;
/// Rows of the picture put on the canvas at a time.
const STRIP_ROWS: usize = 256;

/// Saves the photo with the boxes; says what was saved.
pub fn save_png(photo: &Photo, regions: &[Region]) -> Result<String, String> {
    let (url, [w, h]) = draw(photo, regions).map_err(|e| format!("the picture could not be drawn: {e:?}"))?;
    save_url(url, &format!("{}-regions.png", stem(&photo.name)))?;
    let (pw, ph) = (photo.image.width(), photo.image.height());
    Ok(if [w, h] == [pw, ph] {
        "saved the photo with its boxes".into()
    } else {
        format!("saved the photo with its boxes, scaled to {w}×{h} from {pw}×{ph}")
    })
}

/// The photo with every region's box, number and caption, as a PNG data URL, and its size: the
/// photo's, or less so that its longest side is at most [`MAX_PICTURE_SIDE`].
fn draw(photo: &Photo, regions: &[Region]) -> Result<(String, [u32; 2]), wasm_bindgen::JsValue> {
    let (w, h) = (photo.image.width(), photo.image.height());
    let scale = (f64::from(MAX_PICTURE_SIDE) / f64::from(w.max(h))).min(1.0);
    let size = [w, h].map(|side| ((f64::from(side) * scale).round() as u32).max(1));
    let scaled;
    let image = if scale < 1.0 {
        scaled = image::imageops::thumbnail(&*photo.image, size[0], size[1]);
        &scaled
    } else {
        &*photo.image
    };
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let canvas: web_sys::HtmlCanvasElement = document.create_element("canvas")?.unchecked_into();
    canvas.set_width(size[0]);
    canvas.set_height(size[1]);
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d")?.ok_or("no 2d context")?.unchecked_into();
    // a strip of rows at a time, so that the RGBA copy stays small
    for (strip, rows) in image.as_raw().chunks(3 * size[0] as usize * STRIP_ROWS).enumerate() {
        let rgba: Vec<u8> = rows.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        let height = (rgba.len() / 4) as u32 / size[0];
        let pixels = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), size[0], height)?;
        ctx.put_image_data(&pixels, 0.0, (strip * STRIP_ROWS) as f64)?;
    }
    // the boxes and labels are drawn in the photo's pixels
    ctx.scale(scale, scale)?;
    // lines and letters grow with the photo, so that they read the same on any size
    let unit = (f64::from(w.max(h)) / 400.0).max(1.0);
    let font = 12.0 * unit;
    ctx.set_line_width(2.0 * unit);
    ctx.set_font(&format!("600 {font}px system-ui, sans-serif"));
    ctx.set_text_baseline("top");
    for r in regions {
        let [x1, y1, x2, y2] = r.bbox.0;
        ctx.set_stroke_style_str(BOX);
        ctx.stroke_rect(x1, y1, x2 - x1, y2 - y1);
        let caption = match &r.state {
            RegionState::Described(d) => format!("{} {}", r.number, d.caption),
            _ => r.number.to_string(),
        };
        let text_w = ctx.measure_text(&caption)?.width();
        let pad = 3.0 * unit;
        // the label sits on the box's top edge, inside the photo
        let y = (y1 - font - 2.0 * pad).max(0.0);
        let x = x1.min(f64::from(w) - text_w - 2.0 * pad).max(0.0);
        ctx.set_fill_style_str(LABEL);
        ctx.fill_rect(x, y, text_w + 2.0 * pad, font + 2.0 * pad);
        ctx.set_fill_style_str("#ffffff");
        ctx.fill_text(&caption, x + pad, y + pad)?;
    }
    Ok((canvas.to_data_url_with_type("image/png")?, size))
}
