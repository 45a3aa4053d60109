//! `tracing` spans as joules spans (feature `tracing`): code already instrumented with
//! `tracing` (candle's models open `model`, `encoder`, `layer`, `attn`, ... spans) gets joules
//! per span path with no annotation of ours.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(joules::tracing::JoulesLayer::new());
//! // candle's spans are TRACE: `JoulesLayer::new().with_filter(LevelFilter::TRACE)` takes them
//! // without turning them on for every other layer.
//! tracing::subscriber::with_default(subscriber, || {
//!     let profiler = joules::Profiler::builder()
//!         .source(joules::source::Sim::new(joules::source::SimScript::new(joules::Watts(5.0))))
//!         .start()
//!         .unwrap();
//!     {
//!         let _model = tracing::info_span!("model").entered();
//!         let _layer = tracing::info_span!("layer").entered();
//!         std::hint::black_box((0..100_000u64).sum::<u64>());
//!     }
//!     let report = profiler.stop().report("traced");
//!     assert_eq!(report.benches[0].spans[1].path, "model/layer");
//! });
//! ```
//!
//! Each `tracing` callsite becomes one joules site (its name, module, file and line), made
//! once and kept for the life of the process: spans from one callsite are one path, and two
//! callsites of one name under one parent stay two (told apart by module or line, as joules'
//! own sites are). A span is a joules span while it is entered, on the thread that entered
//! it; its parent is whatever span that thread had open, as `tracing`'s contextual parent is.
//!
//! Cost: with no profiler running, entering costs the Layer one relaxed load, and leaving a
//! look through this thread's (empty) stack of open spans. With one, a
//! lookup of the span's metadata in the registry, of its site in a per-thread table (the
//! process-wide table, behind a lock, only on a thread's first use of a callsite), and a
//! joules span. `span_overhead` measures it beside a plain `Registry` span.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

use ::tracing_core::span::Id;
use ::tracing_core::{Metadata, Subscriber};
use ::tracing_subscriber::layer::{Context, Layer};
use ::tracing_subscriber::registry::LookupSpan;

use crate::span::{Site, SpanGuard, enter};

/// A [`Layer`] that makes every entered `tracing` span a joules span.
#[derive(Clone, Copy, Debug, Default)]
pub struct JoulesLayer {
    _private: (),
}

impl JoulesLayer {
    /// The layer: add it to a subscriber stack (`registry().with(JoulesLayer::new())`).
    pub fn new() -> Self {
        JoulesLayer { _private: () }
    }
}

/// One site per callsite, by the address of its `'static` metadata.
static SITES: Mutex<Option<HashMap<usize, &'static Site>>> = Mutex::new(None);

thread_local! {
    /// This thread's copy of the sites it used: no lock after a callsite's first use here.
    static LOCAL: RefCell<HashMap<usize, &'static Site>> = RefCell::new(HashMap::new());
    /// The joules spans open for entered `tracing` spans, innermost last.
    static OPEN: RefCell<Vec<(Id, SpanGuard)>> = const { RefCell::new(Vec::new()) };
}

fn site_for(meta: &'static Metadata<'static>) -> &'static Site {
    let key = meta as *const Metadata<'static> as usize;
    // `try_with` everywhere here: spans can be left from thread-local destructors (a future
    // dropped at thread exit), after this thread's tables are gone.
    if let Some(site) = LOCAL.try_with(|l| l.borrow().get(&key).copied()).ok().flatten() {
        return site;
    }
    let site = {
        let mut sites = SITES.lock().unwrap_or_else(|p| p.into_inner());
        *sites.get_or_insert_with(HashMap::new).entry(key).or_insert_with(|| {
            // Made once per callsite, for the life of the process, as a `static` site is.
            Box::leak(Box::new(Site::new(
                meta.name(),
                meta.module_path().unwrap_or_else(|| meta.target()),
                meta.file().unwrap_or("<unknown>"),
                meta.line().unwrap_or(0),
            )))
        })
    };
    let _ = LOCAL.try_with(|l| l.borrow_mut().insert(key, site));
    site
}

impl<S> Layer<S> for JoulesLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !crate::span::profiling() {
            return;
        }
        let Some(meta) = ctx.metadata(id) else { return };
        let guard = enter(site_for(meta));
        // Without the stack (thread teardown) the guard ends the span at once.
        let _ = OPEN.try_with(|open| open.borrow_mut().push((id.clone(), guard)));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // Usually the innermost; a span left out of order ends where it is (joules flags the
        // spans it closes early as not left by their own guard).
        let guard = OPEN
            .try_with(|open| {
                let mut open = open.borrow_mut();
                let at = open.iter().rposition(|(open_id, _)| open_id == id)?;
                Some(open.remove(at).1)
            })
            .ok()
            .flatten();
        drop(guard);
    }
}
