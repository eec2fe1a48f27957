//! The interactive photo that the page and the widget share: numbered boxes over it, the selected
//! one with corner handles; a drag draws a new box, a corner drag reshapes the selected one, a
//! click selects. With the keyboard alone: Enter starts a box in the middle, arrows move the
//! selected box (Shift: ten pixels), Alt+arrows resize it, Delete removes it. Touch works as a
//! mouse does. Below it, [`ViewStrip`] shows the views of the selected region.

use std::sync::Arc;

use image::RgbImage;
use leptos::prelude::*;

use super::browser::{png_url, revoke};
use super::regions::{Draft, Photo, Region, Regions};
use crate::views::{RegionBox, Views};

/// How close (screen pixels) a press must be to a corner of the selected box to grab it.
const HANDLE_REACH_PX: f64 = 12.0;

/// The interactive photo. `on_edit` hears the number of each region whose box a person set.
#[component]
pub fn Stage(
    photo: Signal<Option<Photo>>,
    regions: Regions,
    on_edit: Callback<u32>,
    /// What the stage says while it has no photo.
    #[prop(optional)]
    empty: &'static str,
) -> impl IntoView {
    let stage = NodeRef::<leptos::html::Div>::new();
    // where the drag in progress spans from, in photo pixels
    let anchor = StoredValue::new(None::<[f64; 2]>);
    let image = move || photo.with_untracked(|p| p.as_ref().map(|p| p.image.clone()));

    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (Some(el), Some(image)) = (stage.get_untracked(), image()) else { return };
        ev.prevent_default();
        let _ = el.set_pointer_capture(ev.pointer_id());
        let at = pointer_in_image(&el, &image, &ev);
        let selected = regions.selected.get_untracked().and_then(|n| regions.get(n));
        let grabbed = selected.and_then(|r| grab_corner(r.bbox, at, &el, &image).map(|from| (r.number, from)));
        let (of, from) = match grabbed {
            Some((n, from)) => (Some(n), from),
            None => (None, at),
        };
        anchor.set_value(Some(from));
        regions.draft.set(Some(Draft { of, bbox: RegionBox::spanning(from, at) }));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        let (Some(from), Some(el), Some(image)) = (anchor.get_value(), stage.get_untracked(), image()) else { return };
        let at = pointer_in_image(&el, &image, &ev);
        regions.draft.update(|d| {
            if let Some(d) = d {
                d.bbox = RegionBox::spanning(from, at);
            }
        });
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        let (Some(from), Some(el), Some(image)) = (anchor.get_value(), stage.get_untracked(), image()) else { return };
        anchor.set_value(None);
        let at = pointer_in_image(&el, &image, &ev);
        let Some(draft) = regions.draft.get_untracked() else { return };
        regions.draft.set(None);
        let b = RegionBox::spanning(from, at);
        if b.area() > 0.0 {
            let number = match draft.of {
                Some(n) => {
                    regions.set_box(n, b);
                    n
                }
                None => regions.add(b),
            };
            on_edit.run(number);
        } else if let Some(n) = region_at(&regions.list.get_untracked(), at) {
            regions.selected.set(Some(n));
        }
    };
    let on_cancel = move |_: leptos::ev::PointerEvent| {
        anchor.set_value(None);
        regions.draft.set(None);
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let Some(image) = image() else { return };
        let selected = regions.selected.get_untracked().and_then(|n| regions.get(n));
        let key = ev.key();
        let number = match (key.as_str(), selected) {
            ("Enter", _) => Some(regions.add(RegionBox::middle_of(image.width(), image.height()))),
            ("Delete" | "Backspace", Some(r)) => {
                regions.remove(r.number);
                None
            }
            (_, Some(r)) => match arrow(&ev).map(|d| {
                let (w, h) = (image.width(), image.height());
                if ev.alt_key() { r.bbox.resized(d, w, h) } else { r.bbox.nudged(d, w, h) }
            }) {
                Some(b) => {
                    regions.set_box(r.number, b);
                    Some(r.number)
                }
                None => return,
            },
            _ => return,
        };
        ev.prevent_default();
        if let Some(n) = number {
            on_edit.run(n);
        }
    };

    view! {
        <div
            class="stage"
            data-role="stage"
            node_ref=stage
            tabindex="0"
            role="application"
            aria-label="the photo: drag a box around a region, or press Enter for a box in the middle; arrows move the selected box, Alt with arrows resizes it, Delete removes it"
            on:pointerdown=on_down
            on:pointermove=on_move
            on:pointerup=on_up
            on:pointercancel=on_cancel
            on:keydown=on_key
        >
            {move || match photo.get() {
                Some(p) => view! { <img src=p.url alt=format!("the photo {}", p.name) draggable="false" /> }.into_any(),
                None => view! { <p class="empty">{empty}</p> }.into_any(),
            }}
            <For each=move || regions.list.get() key=|r| (r.number, r.bbox.0.map(f64::to_bits)) let:r>
                <RegionBoxView region=r photo regions />
            </For>
            {move || {
                let (d, p) = (regions.draft.get()?, photo.get()?);
                Some(view! {
                    <div class="region selected draft" style=overlay(d.bbox, &p.image)>
                        {handles()}
                    </div>
                })
            }}
        </div>
    }
}

/// One region's box on the photo, with its number; hidden while a drag reshapes it.
#[component]
fn RegionBoxView(region: Region, photo: Signal<Option<Photo>>, regions: Regions) -> impl IntoView {
    let n = region.number;
    let style = move || {
        let hidden = regions.draft.get().is_some_and(|d| d.of == Some(n));
        match photo.get() {
            Some(p) if !hidden => overlay(region.bbox, &p.image),
            _ => "display:none".to_string(),
        }
    };
    let selected = move || regions.selected.get() == Some(n);
    view! {
        <div class="region" class:selected=selected style=style data-number=n>
            <span class="number" aria-hidden="true">{n}</span>
            {move || selected().then(handles)}
        </div>
    }
}

fn handles() -> impl IntoView {
    ["nw", "ne", "sw", "se"].map(|c| view! { <span class=format!("handle {c}")></span> })
}

/// One selected view, ready to show.
#[derive(Clone)]
pub struct Thumb {
    pub url: String,
    pub ratio: f64,
    /// Size of the crop in the photo, before it is resized for the model.
    pub crop_size: [i64; 2],
    /// The region inside the view, in percent of its side: left, top, width, height.
    pub region_pct: [f64; 4],
}

/// The views as images; on a failure, the ones already made are released.
fn thumbs(views: &Views) -> Result<Vec<Thumb>, String> {
    let s = f64::from(views.size);
    let mut made = Vec::new();
    for v in &views.views {
        let [x1, y1, x2, y2] = v.region_box.map(f64::from);
        let region_pct = [x1 / s * 100.0, y1 / s * 100.0, (x2 - x1) / s * 100.0, (y2 - y1) / s * 100.0];
        let crop_size = [v.crop_box[2] - v.crop_box[0], v.crop_box[3] - v.crop_box[1]];
        match png_url(&v.rgb, views.size) {
            Ok(url) => made.push(Thumb { url, ratio: v.ratio, crop_size, region_pct }),
            Err(e) => {
                made.iter().for_each(|t: &Thumb| revoke(&t.url));
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// The views the model sees of the selected region, made into images when the selection or its
/// views change (their object URLs are released then).
#[component]
pub fn ViewStrip(regions: Regions, #[prop(optional)] detailed: bool) -> impl IntoView {
    let shown = RwSignal::new(Vec::<Thumb>::new());
    let problem = RwSignal::new(None::<String>);
    let source = StoredValue::new(None::<Arc<Views>>);
    let release = move || shown.update(|v| v.drain(..).for_each(|t| revoke(&t.url)));
    Effect::new(move |_| {
        let views = regions.current().and_then(|r| r.views);
        let same = match (&views, &source.get_value()) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        release();
        match views.as_deref().map(thumbs).unwrap_or(Ok(Vec::new())) {
            Ok(made) => {
                shown.set(made);
                problem.set(None);
            }
            Err(e) => problem.set(Some(format!("the views could not be shown: {e}"))),
        }
        source.set_value(views);
    });
    on_cleanup(release);
    view! {
        <div class="thumbs">
            {move || problem.get().map(|why| view! { <p class="error" role="alert">{why}</p> })}
            {move || {
                shown
                    .get()
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let [l, tp, w, h] = t.region_pct;
                        let label = if i == 0 { "region".to_string() } else { format!("context {:.0}%", t.ratio * 100.0) };
                        let size = format!("{}×{} px", t.crop_size[0], t.crop_size[1]);
                        view! {
                            <figure data-role="view">
                                <div class="thumb">
                                    <img src=t.url alt=format!("view: {label}") />
                                    <div class="region" style=format!("left:{l}%;top:{tp}%;width:{w}%;height:{h}%")></div>
                                </div>
                                <figcaption>
                                    {if detailed { label } else { format!("{:.0}%", t.ratio * 100.0) }}
                                    {detailed.then(|| view! { <span class="px">{size}</span> })}
                                </figcaption>
                            </figure>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
}

/// A pointer's position over `stage` in the pixels of the `image` it shows, clamped to the image.
fn pointer_in_image(stage: &web_sys::HtmlDivElement, image: &RgbImage, ev: &leptos::ev::PointerEvent) -> [f64; 2] {
    let r = stage.get_bounding_client_rect();
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let x = ((f64::from(ev.client_x()) - r.left()) / r.width() * w).clamp(0.0, w);
    let y = ((f64::from(ev.client_y()) - r.top()) / r.height() * h).clamp(0.0, h);
    [x, y]
}

/// A press at `at` (image pixels) near a corner of box `b` grabs that corner: returns the opposite
/// corner, from which the drag then spans the box.
fn grab_corner(b: RegionBox, at: [f64; 2], stage: &web_sys::HtmlDivElement, image: &RgbImage) -> Option<[f64; 2]> {
    let reach = HANDLE_REACH_PX * f64::from(image.width()) / stage.get_bounding_client_rect().width();
    let b = b.0;
    let corners = [[b[0], b[1]], [b[2], b[1]], [b[0], b[3]], [b[2], b[3]]];
    let near = |c: &[f64; 2]| (c[0] - at[0]).abs() <= reach && (c[1] - at[1]).abs() <= reach;
    corners.iter().position(near).map(|i| corners[3 - i])
}

/// The smallest region whose box holds `at`: a click selects what it lands on.
fn region_at(regions: &[Region], at: [f64; 2]) -> Option<u32> {
    regions.iter().filter(|r| r.bbox.contains(at)).min_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area())).map(|r| r.number)
}

/// An arrow key's direction, a pixel at a time, ten with Shift.
fn arrow(ev: &leptos::ev::KeyboardEvent) -> Option<[f64; 2]> {
    let step = if ev.shift_key() { 10.0 } else { 1.0 };
    match ev.key().as_str() {
        "ArrowLeft" => Some([-step, 0.0]),
        "ArrowRight" => Some([step, 0.0]),
        "ArrowUp" => Some([0.0, -step]),
        "ArrowDown" => Some([0.0, step]),
        _ => None,
    }
}

/// CSS placing a box over the photo, in percent of its sides.
fn overlay(b: RegionBox, image: &RgbImage) -> String {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let b = b.0;
    format!(
        "left:{}%;top:{}%;width:{}%;height:{}%",
        b[0] / w * 100.0,
        b[1] / h * 100.0,
        (b[2] - b[0]) / w * 100.0,
        (b[3] - b[1]) / h * 100.0
    )
}
