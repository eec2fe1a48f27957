//! The list of regions, numbered as on the photo, with the ways to take the results away.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::browser::{self, wasm_memory_bytes};
use super::export;
use super::regions::{Region, RegionState, Status};
use super::results;
use super::state::page;

const NOTHING_TO_SAVE: &str = "open a photo first: there is nothing to save";
/// Where the browser withholds the clipboard (a page served over plain http from another
/// machine is not a secure context).
const NO_CLIPBOARD: &str = "this browser gives no clipboard to this page (it needs https or localhost)";

/// The regions, numbered as on the photo: select one, delete one, clear all; take the results away.
#[component]
pub fn RegionList() -> impl IntoView {
    let page = page();
    let regions = page.regions;
    let notice = RwSignal::new(String::new());
    let export_json = move |_| {
        let (Some(photo), list) = (page.photo.get_untracked(), regions.list.get_untracked()) else {
            return notice.set(NOTHING_TO_SAVE.into());
        };
        notice.set(export::save_json(&photo, &list).map_or_else(|e| e, |()| "saved the regions as JSON".into()));
    };
    let export_png = move |_| {
        let (Some(photo), list) = (page.photo.get_untracked(), regions.list.get_untracked()) else {
            return notice.set(NOTHING_TO_SAVE.into());
        };
        notice.set(export::save_png(&photo, &list).unwrap_or_else(|e| e));
        page.memory.set(wasm_memory_bytes().to_string());
    };
    let copy_off = !browser::has_clipboard();
    let copy = move |_| {
        let Some((n, d)) = regions.current().and_then(|r| r.description().map(|d| (r.number, d.clone()))) else {
            return notice.set("select a described region to copy".into());
        };
        spawn_local(async move {
            let text = results::as_text(n, &d);
            notice.set(browser::copy_text(&text).await.map_or_else(|e| e, |()| format!("copied region {n}")));
        });
    };
    // the run in progress is for regions that are gone
    let clear = move |_| {
        page.runs.next();
        regions.clear();
        page.stage_text.set(String::new());
        page.status.set(if page.photo.with_untracked(Option::is_some) {
            Status::READY
        } else {
            page.status.get_untracked()
        });
    };
    let entry = move |r: Region| {
        let n = r.number;
        let text = match &r.state {
            RegionState::Pending => "describing…".to_string(),
            RegionState::Described(d) => d.caption.clone(),
            RegionState::Failed(e) => format!("error: {e}"),
        };
        let selected = move || regions.selected.get() == Some(n);
        view! {
            <li data-role="region" class:selected=selected data-box=r.bbox.0.map(|v| v.to_string()).join(",")>
                <button
                    type="button"
                    class="pick"
                    aria-pressed=move || selected().to_string()
                    on:click=move |_| regions.selected.set(Some(n))
                >
                    <span class="number">{n}</span>
                    " "
                    {text}
                </button>
                <button
                    type="button"
                    class="delete secondary"
                    aria-label=format!("delete region {n}")
                    on:click=move |_| regions.remove(n)
                >
                    "×"
                </button>
            </li>
        }
    };
    view! {
        <section class="regions">
            <h2>"Regions"</h2>
            <ol data-role="regions" aria-live="polite">
                <For each=move || regions.list.get() key=|r| (r.number, r.bbox.0.map(f64::to_bits), state_key(&r.state)) children=entry />
            </ol>
            <p class="actions">
                <button type="button" class="secondary" data-role="clear" on:click=clear>
                    "Clear all"
                </button>
                <button type="button" class="secondary" data-role="export-json" on:click=export_json>
                    "Save JSON"
                </button>
                <button type="button" class="secondary" data-role="export-png" on:click=export_png>
                    "Save picture"
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-role="copy"
                    on:click=copy
                    disabled=copy_off
                    title=copy_off.then_some(NO_CLIPBOARD)
                >
                    "Copy result"
                </button>
                <span class="notice" role="status">{move || notice.get()}</span>
            </p>
        </section>
    }
}

/// Tells a region's states apart, so that the list redraws an entry when its state changes.
fn state_key(state: &RegionState) -> u8 {
    match state {
        RegionState::Pending => 0,
        RegionState::Described(_) => 1,
        RegionState::Failed(_) => 2,
    }
}
