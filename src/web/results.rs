//! A region's description. By default the summary the official demo shows: the caption with its
//! score, the attributes that stand out (above 1.2 times their mean) and the best class; `details`
//! shows every tag, every attribute as a bar and the classes in order.

use std::sync::Arc;

use leptos::prelude::*;

use crate::describe::{Description, Scored};

/// Attributes above this many times the mean score stand out.
const STANDOUT: f32 = 1.2;

/// The attributes worth naming: above [`STANDOUT`] times their mean, strongest first.
pub fn standout_attributes(d: &Description) -> Vec<Scored> {
    let mean = d.attributes.iter().map(|a| a.score).sum::<f32>() / d.attributes.len().max(1) as f32;
    let mut out: Vec<Scored> = d.attributes.iter().filter(|a| a.score > STANDOUT * mean).cloned().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

pub fn best_class(d: &Description) -> Option<&Scored> {
    d.classes.iter().max_by(|a, b| a.score.total_cmp(&b.score))
}

/// One region's result as plain text, for the clipboard.
pub fn as_text(number: u32, d: &Description) -> String {
    let names = |s: &[Scored]| s.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
    let class = best_class(d).map_or(String::new(), |c| format!("\nclass: {}", c.name));
    format!(
        "region {number}: {}{class}\nattributes: {}\ntags: {}",
        d.caption,
        names(&standout_attributes(d)),
        names(&d.tags)
    )
}

#[component]
pub fn Results(description: Arc<Description>, details: RwSignal<bool>) -> impl IntoView {
    let d = description;
    let standout = standout_attributes(&d);
    let best = best_class(&d).cloned();
    let mut attributes = d.attributes.clone();
    attributes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut classes = d.classes.clone();
    classes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let tags = d.tags.clone();
    let summary = move || {
        let standout = standout.clone();
        let best = best.clone();
        view! {
            <div class="summary">
                <div class="line">
                    <span class="label">"Stands out: "</span>
                    <ol data-role="attributes" class="inline">
                        {standout.into_iter().map(|a| view! { <li title=format!("{:.2}", a.score)>{a.name}</li> }).collect_view()}
                    </ol>
                </div>
                <div class="line">
                    <span class="label">"Class: "</span>
                    <ol data-role="class" class="inline">
                        {best.map(|c| view! { <li>{format!("{} {:.2}", c.name, c.score)}</li> })}
                    </ol>
                </div>
            </div>
        }
    };
    let full = move || {
        let (tags, attributes, classes) = (tags.clone(), attributes.clone(), classes.clone());
        view! {
            <div class="columns">
                <div>
                    <h3>"Tags"</h3>
                    <ul data-role="tags">
                        {tags.iter().map(|t| view! { <li title=format!("{:.3}", t.score)>{t.name.clone()}</li> }).collect_view()}
                    </ul>
                    {tags.is_empty().then(|| view! { <p class="none">"none above the threshold"</p> })}
                </div>
                <div>
                    <h3>"Attributes"</h3>
                    <ol data-role="attributes">
                        {attributes
                            .into_iter()
                            .map(|a| {
                                let width = format!("width:{:.0}%", a.score.clamp(0.0, 1.0) * 100.0);
                                view! {
                                    <li>
                                        <span class="name">{a.name}</span>
                                        <span class="meter" aria-hidden="true"><span style=width></span></span>
                                        <span class="value">{format!("{:.2}", a.score)}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                </div>
                <div>
                    <h3>"Classes"</h3>
                    <ol data-role="class">
                        {classes.into_iter().map(|c| view! { <li>{format!("{} {:.2}", c.name, c.score)}</li> }).collect_view()}
                    </ol>
                </div>
            </div>
        }
    };
    view! {
        <section class="results">
            <p class="caption">
                <span data-role="caption">{d.caption.clone()}</span>
                <span class="score">{format!(" (score {:.2e})", d.caption_score)}</span>
            </p>
            <button
                type="button"
                class="secondary"
                data-role="details"
                aria-expanded=move || details.get().to_string()
                on:click=move |_| details.update(|d| *d = !*d)
            >
                {move || if details.get() { "Summary" } else { "Details" }}
            </button>
            {move || if details.get() { full().into_any() } else { summary().into_any() }}
        </section>
    }
}
