//! What the page and the widget work on: a photo, the regions a person drew on it, and how far
//! the work on them is. Every region a person draws or moves waits as `Pending`; one run then
//! describes all the pending regions in one batch through the model, and a newer edit stops the
//! run at its next stage.

use std::rc::Rc;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use image::RgbImage;
use leptos::prelude::*;

use super::browser::{now_ms, sleep};
use crate::describe::{DescribeOptions, Describer, Description, Stage, Timings, Watcher};
use crate::views::{RegionBox, ViewOptions, Views, build_views};

/// A photo the person opened: its pixels (upright), a URL the page shows it from, its name.
#[derive(Clone)]
pub struct Photo {
    pub image: Arc<RgbImage>,
    pub url: String,
    pub name: String,
}

/// What the page or widget is doing, as `data-role="status"` shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Loading,
    /// Waiting for the person; the widget says what for.
    Ready {
        hint: Option<&'static str>,
    },
    Running,
    /// Every region is described; the widget tells how long its run took.
    Done {
        ms: Option<f64>,
    },
    Error(String),
}

impl Status {
    pub const READY: Status = Status::Ready { hint: None };
    pub const DONE: Status = Status::Done { ms: None };

    pub fn error(why: impl std::fmt::Display) -> Status {
        Status::Error(why.to_string())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Loading => f.write_str("loading"),
            Status::Ready { hint: None } => f.write_str("ready"),
            Status::Ready { hint: Some(hint) } => write!(f, "ready: {hint}"),
            Status::Running => f.write_str("running"),
            Status::Done { ms: None } => f.write_str("done"),
            Status::Done { ms: Some(ms) } => write!(f, "done in {ms:.0} ms"),
            Status::Error(why) => write!(f, "error: {why}"),
        }
    }
}

/// How far a region's description is.
#[derive(Clone)]
pub enum RegionState {
    Pending,
    Described(Arc<Description>),
    Failed(String),
}

/// A box on the photo, numbered as drawn.
#[derive(Clone)]
pub struct Region {
    pub number: u32,
    /// In photo pixels.
    pub bbox: RegionBox,
    /// The nested views of the box, once built.
    pub views: Option<Arc<Views>>,
    pub state: RegionState,
}

impl Region {
    pub fn description(&self) -> Option<&Arc<Description>> {
        match &self.state {
            RegionState::Described(d) => Some(d),
            _ => None,
        }
    }
}

/// A box being dragged: a new one, or a new shape for region `of`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draft {
    pub of: Option<u32>,
    pub bbox: RegionBox,
}

/// The regions of the photo in view, the selected one, the one being dragged.
#[derive(Clone, Copy)]
pub struct Regions {
    pub list: RwSignal<Vec<Region>>,
    pub selected: RwSignal<Option<u32>>,
    pub draft: RwSignal<Option<Draft>>,
    next: StoredValue<u32>,
}

impl Regions {
    pub fn new() -> Regions {
        Regions {
            list: RwSignal::new(Vec::new()),
            selected: RwSignal::new(None),
            draft: RwSignal::new(None),
            next: StoredValue::new(1),
        }
    }

    /// Adds a pending region and selects it; returns its number.
    pub fn add(&self, bbox: RegionBox) -> u32 {
        let number = self.next.get_value();
        self.next.set_value(number + 1);
        self.list.update(|l| l.push(Region { number, bbox, views: None, state: RegionState::Pending }));
        self.selected.set(Some(number));
        number
    }

    /// Gives region `number` a new box, to be described again.
    pub fn set_box(&self, number: u32, bbox: RegionBox) {
        self.list.update(|l| {
            if let Some(r) = l.iter_mut().find(|r| r.number == number) {
                *r = Region { number, bbox, views: None, state: RegionState::Pending };
            }
        });
    }

    /// The selected region's box becomes `bbox`; with none selected, `bbox` is a new region.
    pub fn set_selected_or_add(&self, bbox: RegionBox) -> u32 {
        match self.selected.get_untracked().filter(|n| self.get(*n).is_some()) {
            Some(n) => {
                self.set_box(n, bbox);
                n
            }
            None => self.add(bbox),
        }
    }

    /// Every region marked to be described again (e.g. with other classes).
    pub fn redo_all(&self) {
        self.list.update(|l| l.iter_mut().for_each(|r| r.state = RegionState::Pending));
    }

    pub fn remove(&self, number: u32) {
        self.list.update(|l| l.retain(|r| r.number != number));
        if self.selected.get_untracked() == Some(number) {
            self.selected.set(self.list.with_untracked(|l| l.last().map(|r| r.number)));
        }
    }

    /// Removes every region; numbers start again at 1.
    pub fn clear(&self) {
        self.list.set(Vec::new());
        self.selected.set(None);
        self.draft.set(None);
        self.next.set_value(1);
    }

    /// Replaces every region with `boxes`, numbered from 1, the first selected.
    pub fn replace(&self, boxes: &[RegionBox]) {
        self.clear();
        for &b in boxes {
            self.add(b);
        }
        self.selected.set((!boxes.is_empty()).then_some(1));
    }

    pub fn get(&self, number: u32) -> Option<Region> {
        self.list.with_untracked(|l| l.iter().find(|r| r.number == number).cloned())
    }

    /// The selected region (tracked).
    pub fn current(&self) -> Option<Region> {
        let n = self.selected.get()?;
        self.list.with(|l| l.iter().find(|r| r.number == n).cloned())
    }

    /// Whether any region waits for its description.
    pub fn any_pending(&self) -> bool {
        self.list.with_untracked(|l| l.iter().any(|r| matches!(r.state, RegionState::Pending)))
    }

    fn update(&self, number: u32, bbox: RegionBox, change: impl FnOnce(&mut Region)) {
        self.list.update(|l| {
            // a region moved since the run began is left to the next run
            if let Some(r) = l.iter_mut().find(|r| r.number == number && r.bbox == bbox) {
                change(r);
            }
        });
    }
}

/// How long a change waits before the run starts, in case a newer one follows (a drag, a held
/// arrow key): only the last of a quick series is described.
pub const SETTLE_MS: u32 = 50;

/// Numbers the runs: a change starts a new run, and the older one stops at its next stage.
#[derive(Clone, Copy)]
pub struct Runs(StoredValue<u64>);

impl Runs {
    pub fn new() -> Runs {
        Runs(StoredValue::new(0))
    }

    /// A new run, which makes every older one stale.
    pub fn next(&self) -> u64 {
        let id = self.0.get_value() + 1;
        self.0.set_value(id);
        id
    }

    pub fn is_current(&self, id: u64) -> bool {
        self.0.get_value() == id
    }
}

/// What one run is to do.
pub struct Job {
    /// Without a model the views are built and shown, not described.
    pub model: Option<Rc<Describer>>,
    pub options: DescribeOptions,
    pub num_views: usize,
}

/// How a run ended that no newer one replaced.
pub struct Finished {
    /// How many regions this run described.
    pub described: usize,
    /// The stages of the batch.
    pub timings: Timings,
    /// Why the first region that failed did.
    pub failed: Option<String>,
    /// Milliseconds from the start of its work to its end.
    pub ms: f64,
}

/// Starts a run of the pending regions, the one way the page and the widget describe: it waits
/// [`SETTLE_MS`] in case a newer change follows (a drag, a held arrow key), then builds their
/// views and describes them, while an older run stops at its next stage. `on_stage` hears each
/// stage; `finished` hears how the run ended, unless a newer one replaced it.
pub fn start_run(
    regions: Regions,
    runs: Runs,
    image: Arc<RgbImage>,
    job: Job,
    on_stage: impl FnMut(Stage) + 'static,
    finished: impl FnOnce(Finished) + 'static,
) {
    let id = runs.next();
    leptos::task::spawn_local(async move {
        sleep(SETTLE_MS).await;
        if !runs.is_current(id) {
            return;
        }
        let t0 = now_ms();
        if let Some((described, timings, failed)) =
            describe_pending(regions, image, job, runs, id, on_stage, &mut now_ms).await
        {
            finished(Finished { described, timings, failed, ms: now_ms() - t0 });
        }
    });
}

/// Builds the views of every pending region, then describes them in one batch (their encoders
/// run together); the results land in `regions`. Returns how many were described, the timings and
/// the first failure, or `None` when a newer run replaced this one.
async fn describe_pending(
    regions: Regions,
    image: Arc<RgbImage>,
    job: Job,
    runs: Runs,
    id: u64,
    mut on_stage: impl FnMut(Stage),
    clock: &mut dyn FnMut() -> f64,
) -> Option<(usize, Timings, Option<String>)> {
    let size = job.model.as_ref().map_or(ViewOptions::default().size, |d| d.manifest.config.image_size as u32);
    let opts = ViewOptions { num_views: job.num_views, size };
    let pending: Vec<(u32, RegionBox)> = regions.list.with_untracked(|l| {
        l.iter().filter(|r| matches!(r.state, RegionState::Pending)).map(|r| (r.number, r.bbox)).collect()
    });
    let mut failed = None;
    let mut built = Vec::new();
    for (number, bbox) in pending {
        match build_views(&image, bbox, &opts) {
            Ok(views) => {
                let views = Arc::new(views);
                regions.update(number, bbox, |r| r.views = Some(views.clone()));
                built.push((number, bbox, views));
            }
            Err(e) => {
                let why = format!("box {}: {e}", bbox.to_text());
                failed.get_or_insert(why.clone());
                regions.update(number, bbox, |r| r.state = RegionState::Failed(why));
            }
        }
    }
    let Some(model) = job.model else {
        return Some((0, Timings::new(), failed));
    };
    let mut watch = |stage: Stage| {
        if !runs.is_current(id) {
            return std::ops::ControlFlow::Break(());
        }
        on_stage(stage);
        std::ops::ControlFlow::Continue(())
    };
    let views = built.iter().map(|(_, _, v)| (**v).clone()).collect();
    // the page handles input between stages: a macrotask turn, which the microtasks that drive
    // the futures never give
    let take_turn = || -> LocalBoxFuture<'static, ()> { Box::pin(sleep(0)) };
    let watcher = Watcher { on_stage: &mut watch, clock, take_turn: Some(&take_turn) };
    let result = model.describe_batch_watched(views, &job.options, watcher).await;
    if !runs.is_current(id) {
        return None;
    }
    let (described, timings) = match result {
        Ok((descriptions, timings)) => {
            let described = descriptions.len();
            for ((number, bbox, _), d) in built.into_iter().zip(descriptions) {
                regions.update(number, bbox, |r| r.state = RegionState::Described(Arc::new(d)));
            }
            (described, timings)
        }
        Err(e) => {
            failed.get_or_insert(e.to_string());
            for (number, bbox, _) in built {
                regions.update(number, bbox, |r| r.state = RegionState::Failed(e.to_string()));
            }
            (0, Timings::new())
        }
    };
    Some((described, timings, failed))
}
