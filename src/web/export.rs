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

pub fn save_png(photo: &Photo, regions: &[Region]) -> Result<(), String> {
    let url = draw(photo, regions).map_err(|e| format!("the picture could not be drawn: {e:?}"))?;
    save_url(url, &format!("{}-regions.png", stem(&photo.name)))
}

/// The photo at its size with every region's box, number and caption, as a PNG data URL.
fn draw(photo: &Photo, regions: &[Region]) -> Result<String, wasm_bindgen::JsValue> {
    let (w, h) = (photo.image.width(), photo.image.height());
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let canvas: web_sys::HtmlCanvasElement = document.create_element("canvas")?.unchecked_into();
    canvas.set_width(w);
    canvas.set_height(h);
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d")?.ok_or("no 2d context")?.unchecked_into();
    let rgba: Vec<u8> = photo.image.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let pixels = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), w, h)?;
    ctx.put_image_data(&pixels, 0.0, 0.0)?;
    // lines and letters grow with the photo, so that they read the same on any size
    let unit = (f64::from(w.max(h)) / 400.0).max(1.0);
    let font = 12.0 * unit;
    ctx.set_line_width(2.0 * unit);
    ctx.set_font(&format!("600 {font}px system-ui, sans-serif"));
    ctx.set_text_baseline("top");
    for r in regions {
        let [x1, y1, x2, y2] = r.bbox;
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
    canvas.to_data_url_with_type("image/png")
}
