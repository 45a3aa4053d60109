use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts, measure_energy, span};

fn sim() -> Sim {
    Sim::new(SimScript::new(Watts(10.0)))
}

fn paths(report: &joules::report::Report) -> Vec<(String, f64)> {
    report.benches[0].spans.iter().map(|s| (s.path.clone(), s.calls.point)).collect()
}

#[measure_energy(name = "block-user")]
fn uses_block() {
    let _s = span!("inside");
    std::hint::black_box(1);
}

#[test]
fn spans_entered_with_no_profiler_leave_no_trace() {
    let _lock = joules_tests::profiler_lock();
    uses_block(); // no profiler: inert guards
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let report = profiler.stop().report("idle");
    assert!(report.benches[0].spans.is_empty(), "{:?}", paths(&report));
}

#[test]
fn block_spans_nest_under_functions() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    for _ in 0..3 {
        uses_block();
    }
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("block");
    assert_eq!(paths(&report), vec![("block-user".into(), 3.0), ("block-user/inside".into(), 3.0)]);
}

struct Model {
    scale: u64,
}

impl Model {
    #[measure_energy]
    fn layer<T: Into<u64>>(&self, x: T) -> u64 {
        x.into() * self.scale
    }

    #[measure_energy(name = "async-layer")]
    async fn infer(&self, x: u64) -> Result<u64, std::num::TryFromIntError> {
        YieldOnce(false).await;
        let y = u32::try_from(x)?;
        Ok(self.layer(y))
    }
}

/// Pending once, then ready: forces a second poll.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn async_fns_and_generic_methods_are_spans() {
    let _lock = joules_tests::profiler_lock();
    let model = Model { scale: 3 };
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    assert_eq!(model.layer(2u8), 6);
    assert_eq!(block_on(model.infer(5)), Ok(15));
    assert!(block_on(model.infer(u64::MAX)).is_err(), "`?` inside an async span still works");
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("async");
    // An async span is entered on every poll: two polls per call here.
    assert_eq!(
        paths(&report),
        vec![("layer".into(), 1.0), ("async-layer".into(), 4.0), ("async-layer/layer".into(), 1.0)]
    );
}

#[test]
fn threads_keep_their_own_span_stacks() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..5 {
                    uses_block();
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("threads");
    assert_eq!(paths(&report), vec![("block-user".into(), 10.0), ("block-user/inside".into(), 10.0)]);
}

#[test]
fn a_second_profiler_is_refused_while_one_runs() {
    let _lock = joules_tests::profiler_lock();
    let first = Profiler::builder().source(sim()).start().unwrap();
    let second = Profiler::builder().source(sim()).start();
    assert!(matches!(second, Err(joules::ProfileError::AlreadyRunning)));
    drop(first);
    Profiler::builder().source(sim()).start().expect("free again after the first is dropped");
}

static SYNCS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_sync() {
    SYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[measure_energy(sync = count_sync)]
fn gpu_layer() {}

#[test]
fn sync_hooks_run_at_both_edges_only_while_profiling() {
    use std::sync::atomic::Ordering::Relaxed;
    let _lock = joules_tests::profiler_lock();
    SYNCS.store(0, Relaxed);
    gpu_layer();
    assert_eq!(SYNCS.load(Relaxed), 0, "no profiler, no device round trips");
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    gpu_layer();
    assert_eq!(SYNCS.load(Relaxed), 2, "entry and exit");
    drop(profiler);
    // The profiler-level hook runs at every span's edges.
    SYNCS.store(0, Relaxed);
    let profiler = Profiler::builder().source(sim()).sync_at_span_edges(count_sync).start().unwrap();
    uses_block(); // two spans: four edges
    let report = profiler.stop().report("hook");
    assert_eq!(SYNCS.load(Relaxed), 4);
    assert_eq!(paths(&report)[0].0, "block-user");
    uses_block();
    assert_eq!(SYNCS.load(Relaxed), 4, "the hook is cleared when the profiler stops");
}

/// A guard dropped before the one inside it ends both spans there: later spans nest where
/// they ran, not under spans that are over, and the inner exit that comes after is counted.
#[test]
fn guards_dropped_out_of_order_do_not_mis_nest_later_spans() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    for _ in 0..3 {
        let outer = span!("outer");
        let inner = span!("inner");
        drop(outer);
        drop(inner);
        let _later = span!("later");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("out-of-order");
    assert_eq!(
        paths(&report),
        vec![("outer".into(), 3.0), ("outer/inner".into(), 3.0), ("later".into(), 3.0)]
    );
    let warnings = &report.benches[0].warnings;
    assert!(warnings.iter().any(|w| w.starts_with("3 span exits matched no open span")), "{warnings:?}");
    // inner was ended by outer's exit, not its own: flagged, and said.
    assert_eq!(not_left(&report), ["outer/inner"]);
    assert!(warnings.iter().any(|w| w.starts_with("outer/inner not left by its own guard")), "{warnings:?}");
}

/// A guard dropped late must not close a span entered since at its depth: after two
/// out-of-order drops at different depths, `b` (cut off at depth 1 by `a`'s drop) is dropped
/// while `f` runs at depth 1. It exits late; `f` goes on, and `x` nests in it.
#[test]
fn a_late_guard_never_closes_a_span_entered_since_at_its_depth() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    let a = span!("a");
    let b = span!("b");
    drop(a);
    let c = span!("c");
    let d = span!("d");
    let e = span!("e");
    drop(d);
    let f = span!("f");
    drop(b);
    {
        let _x = span!("x");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(f);
    drop(e);
    drop(c);
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("late");
    let found: Vec<String> = paths(&report).into_iter().map(|(p, _)| p).collect();
    assert!(found.contains(&"c/f/x".to_owned()), "{found:?}");
    assert!(!found.contains(&"c/x".to_owned()), "{found:?}");
    assert!(!not_left(&report).contains(&"c/f"), "f was left by its own guard: {:?}", not_left(&report));
}

/// Puts the ring size back for the threads of later tests when dropped, whatever happens.
struct RingSize;

impl Drop for RingSize {
    fn drop(&mut self) {
        joules::__private::set_span_ring_capacity(1 << 16);
    }
}

/// Rings of `events` for threads registering from now on, until the guard is dropped.
fn tiny_ring(events: usize) -> RingSize {
    joules::__private::set_span_ring_capacity(events);
    RingSize
}

fn not_left(report: &joules::report::Report) -> Vec<&str> {
    report.benches[0]
        .spans
        .iter()
        .filter(|s| s.flags.contains(&joules::report::Flag::NotLeft))
        .map(|s| s.path.as_str())
        .collect()
}

fn flagged(report: &joules::report::Report, flag: &joules::report::Flag) -> Vec<String> {
    report.benches[0].spans.iter().filter(|s| s.flags.contains(flag)).map(|s| s.path.clone()).collect()
}

/// A forgotten guard (`mem::forget`) never ends its span. Its span is left out: the spans
/// its thread enters afterwards, inside the enclosing span or after it, nest where they ran,
/// the enclosing span is flagged as holding its time, and the warning names it. A guard
/// forgotten outside every span on a thread that has ended is left out too; on a thread
/// still running at the stop it may be alive, so it stays, flagged `not left`.
#[test]
fn a_forgotten_guard_mis_nests_no_later_span() {
    use joules::report::Flag;
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    for _ in 0..3 {
        let parent = span!("parent");
        std::mem::forget(span!("forgotten"));
        {
            let _sibling = span!("sibling");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(parent);
        let _after = span!("after");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::spawn(|| {
        std::mem::forget(span!("top"));
        let _later = span!("later");
        std::thread::sleep(Duration::from_millis(1));
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("forget");
    assert_eq!(
        paths(&report),
        vec![
            ("parent".into(), 3.0),
            ("parent/sibling".into(), 3.0),
            ("after".into(), 3.0),
            ("later".into(), 1.0)
        ],
        "no span nests under a forgotten one"
    );
    assert!(not_left(&report).is_empty(), "{:?}", not_left(&report));
    assert_eq!(flagged(&report, &Flag::ForgottenInside), ["parent"]);
    let warnings = &report.benches[0].warnings;
    assert!(
        warnings.iter().any(|w| w.contains("3 of `forgotten` inside parent")
            && w.contains("1 of `top` outside any span")
            && w.contains("never dropped")),
        "{warnings:?}"
    );
    // The sibling's time is its own, not the parent's: leaving the forgotten span out moved
    // nothing but the forgotten span's own (zero) time.
    let parent = &report.benches[0].spans[0];
    let sibling = &report.benches[0].spans[1];
    assert!(sibling.exclusive_ns.point >= 1e6 && parent.exclusive_ns.point < sibling.exclusive_ns.point);

    let profiler = Profiler::builder().source(sim()).start().unwrap();
    std::mem::forget(span!("top"));
    {
        let _later = span!("later");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("forget at the top");
    assert_eq!(not_left(&report), ["top"]);
    let warnings = &report.benches[0].warnings;
    assert!(warnings.iter().any(|w| w.contains("forgotten outside every span")), "{warnings:?}");
}

/// One level of a recursion whose level 1 forgets its guard.
fn recurse(n: u32) {
    let guard = span!("level");
    if n > 0 {
        recurse(n - 1);
    }
    if n == 1 {
        std::mem::forget(guard);
    }
}

/// In a recursion, one site is open at several depths: an exit closes the span entered at
/// its own depth, not the innermost of its site. With level 1 forgotten, the outer exit ends
/// the outer span (matching by site ended level 1 instead, and left the outer one open for
/// every later span to nest under).
#[test]
fn recursion_with_a_forgotten_guard_pairs_each_exit_with_its_own_enter() {
    use joules::report::Flag;
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    for _ in 0..3 {
        recurse(2);
        let _after = span!("after");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("recursion");
    assert_eq!(
        paths(&report),
        vec![("level".into(), 3.0), ("level/level".into(), 3.0), ("after".into(), 3.0)],
        "level 2 nests in level 0, where it ran once level 1 is left out"
    );
    assert!(not_left(&report).is_empty(), "{:?}", not_left(&report));
    assert_eq!(flagged(&report, &Flag::ForgottenInside), ["level"]);
    let warnings = &report.benches[0].warnings;
    assert!(warnings.iter().any(|w| w.contains("3 of `level` inside level")), "{warnings:?}");
}

/// A guard forgotten while its span was being dropped (no room in the ring) must not keep
/// its thread dropping: the enclosing guard's exit ends the dropping, and later spans are
/// recorded.
#[test]
fn a_forgotten_guard_of_a_dropped_span_stops_no_later_recording() {
    let _lock = joules_tests::profiler_lock();
    // Room for two spans' edges: a third span, nested in them, is dropped.
    let _ring = tiny_ring(4);
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    std::thread::Builder::new()
        .name("forgets-dropped".into())
        .spawn(|| {
            let outer = span!("outer");
            let a = span!("a");
            std::mem::forget(span!("b"));
            drop(a);
            drop(outer);
            // The ring is full now (the exits kept room for): the sampler drains it.
            std::thread::sleep(Duration::from_millis(10));
            for _ in 0..3 {
                let _later = span!("later");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap()
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3));
    let rec = profiler.stop();
    let thread = rec.spans.threads.iter().find(|t| t.name.as_deref() == Some("forgets-dropped")).unwrap();
    // b's enter finds no room (unless the sampler drained the ring between a and b: then b
    // is recorded, and left out as forgotten).
    let forgotten = thread.forgotten.len() as u64;
    assert_eq!(thread.dropped.min(1) + forgotten, 1, "b dropped or left out");
    assert_eq!(thread.events.len() as u64 + thread.dropped + forgotten, 11, "every edge recorded or counted");
    let report = rec.report("forgotten dropped span");
    // A later span may find the ring still full (the sampler drains it when it wakes), but
    // not all of them: the thread records again.
    let found = paths(&report);
    assert_eq!(&found[..2], [("outer".into(), 1.0), ("outer/a".into(), 1.0)]);
    assert!(found.len() == 3 && found[2].0 == "later" && found[2].1 >= 1.0, "{found:?}");
}

#[measure_energy]
fn nest_a() {
    nest_b();
}

#[measure_energy]
fn nest_b() {
    let _c = span!("c");
    std::hint::black_box(0);
}

/// With a ring far too small for the spans a thread makes, spans are dropped whole: what is
/// recorded nests as it ran, every lost edge is counted, and the warning says where.
#[test]
fn a_tiny_ring_drops_whole_spans_and_never_mis_nests() {
    let _lock = joules_tests::profiler_lock();
    let _ring = tiny_ring(16);
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    std::thread::Builder::new()
        .name("tiny".into())
        .spawn(|| {
            for _ in 0..20_000 {
                nest_a();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3));
    let rec = profiler.stop();
    let thread =
        rec.spans.threads.iter().find(|t| t.name.as_deref() == Some("tiny")).expect("the thread's log");
    assert!(thread.dropped > 0, "a 16-edge ring must overflow");
    assert_eq!(thread.events.len() as u64 + thread.dropped, 6 * 20_000, "every edge recorded or counted");
    let report = rec.report("tiny ring");
    assert!(paths(&report).iter().any(|(p, _)| p == "nest_a/nest_b/c"), "some whole spans were recorded");
    for (path, _) in paths(&report) {
        assert!(
            ["nest_a", "nest_a/nest_b", "nest_a/nest_b/c"].contains(&path.as_str()),
            "mis-nested: {path}"
        );
    }
    let warnings = &report.benches[0].warnings;
    assert!(
        warnings.iter().any(|w| w.contains("dropped, whole spans at a time") && w.contains("on thread tiny")),
        "{warnings:?}"
    );
    // The figures that hold dropped spans are flagged: parents only (c encloses nothing).
    let flagged: Vec<&str> = report.benches[0]
        .spans
        .iter()
        .filter(|s| s.flags.contains(&joules::report::Flag::SpansDropped))
        .map(|s| s.path.as_str())
        .collect();
    assert!(!flagged.is_empty(), "{:?}", report.benches[0].spans);
    assert!(flagged.iter().all(|p| ["nest_a", "nest_a/nest_b"].contains(p)), "{flagged:?}");
    for p in &flagged {
        assert!(
            warnings.iter().any(|w| w.contains("(flagged `spans dropped`: ") && w.contains(p)),
            "the warning names {p}: {warnings:?}"
        );
    }
}

/// A guard entered under one profile and dropped under the next records nothing in the
/// next, and unbalances nothing there.
#[test]
fn a_guard_that_outlives_its_profile_leaves_nothing_in_the_next() {
    let _lock = joules_tests::profiler_lock();
    let first = Profiler::builder().source(sim()).start().unwrap();
    let stale = span!("stale");
    drop(first.stop());
    let second = Profiler::builder().source(sim()).start().unwrap();
    drop(stale);
    {
        let _fresh = span!("fresh");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(3));
    let rec = second.stop();
    assert_eq!(rec.spans.dropped(), 0);
    let report = rec.report("after");
    assert_eq!(paths(&report), vec![("fresh".into(), 1.0)]);
    assert!(
        report.benches[0].warnings.iter().all(|w| !w.contains("matched no open span")),
        "{:?}",
        report.benches[0].warnings
    );
}

/// One encoder layer of a stack: the same code, a span of its own per index.
#[measure_energy(name = "layer", index = i, ops = 10 * (i + 1))]
fn stack_layer(i: usize) {
    let _s = span!("attention");
    std::hint::black_box(i);
}

#[test]
fn each_index_of_a_site_is_a_span_of_its_own_with_its_own_children() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    for _ in 0..2 {
        for i in [0, 1, 2, 1] {
            stack_layer(i);
        }
    }
    // Indexes past the table's end share one span that says so.
    for i in [joules::SITE_INDEXES, joules::SITE_INDEXES + 7] {
        let _s = span!("deep", i);
    }
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("stack");
    let mut got = paths(&report);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let over = format!("deep.{}+", joules::SITE_INDEXES);
    assert_eq!(
        got,
        vec![
            (over, 2.0),
            ("layer.0".into(), 2.0),
            ("layer.0/attention".into(), 2.0),
            ("layer.1".into(), 4.0),
            ("layer.1/attention".into(), 4.0),
            ("layer.2".into(), 2.0),
            ("layer.2/attention".into(), 2.0),
        ]
    );
    // Each index's declared operations stay with it.
    let ops = |path: &str| {
        let span = report.benches[0].spans.iter().find(|s| s.path == path).unwrap();
        span.ops.as_ref().unwrap().per_call
    };
    assert_eq!((ops("layer.0"), ops("layer.1"), ops("layer.2")), (10.0, 20.0, 30.0));
    // Every index keeps the one place in the code it came from.
    let site = |path: &str| report.benches[0].spans.iter().find(|s| s.path == path).unwrap().site.clone();
    assert_eq!(site("layer.0"), site("layer.2"));
}

static INDEXED_SYNCS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_indexed_sync() {
    INDEXED_SYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[measure_energy(name = "gpu-layer", index = i, sync = count_indexed_sync)]
fn synced_layer(i: usize) -> usize {
    i
}

#[measure_energy(name = "async-layer", index = i)]
async fn async_layer(i: usize) -> usize {
    YieldOnce(false).await;
    i
}

/// Indexed spans with a sync hook, and indexed `async fn`s (a span per poll, at its index).
#[test]
fn indexed_spans_sync_and_poll_at_their_index() {
    use std::sync::atomic::Ordering::Relaxed;
    let _lock = joules_tests::profiler_lock();
    INDEXED_SYNCS.store(0, Relaxed);
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    assert_eq!(synced_layer(2) + synced_layer(3), 5);
    assert_eq!(block_on(async_layer(4)), 4);
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("indexed");
    assert_eq!(INDEXED_SYNCS.load(Relaxed), 4, "entry and exit of each call");
    let mut got = paths(&report);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![("async-layer.4".into(), 2.0), ("gpu-layer.2".into(), 1.0), ("gpu-layer.3".into(), 1.0)]
    );
}

/// Many threads entering the same indexes at once intern each index once: one path per
/// index, every call counted.
#[test]
fn threads_racing_to_intern_an_index_share_one_span() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(sim()).start().unwrap();
    let start = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8 {
            let start = &start;
            s.spawn(move || {
                start.wait();
                for i in 0..4 {
                    let _s = span!("raced", (i + t) % 4);
                    std::hint::black_box(i);
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(3));
    let report = profiler.stop().report("raced");
    let mut got = paths(&report);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, f64)> = (0..4).map(|i| (format!("raced.{i}"), 8.0)).collect();
    assert_eq!(got, want);
}
