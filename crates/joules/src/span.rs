//! Span sites, guards and the per-thread event buffers.
//!
//! The hot path: entering a span is one relaxed load of [`ACTIVE`] when no profiler runs; when
//! one runs, relaxed loads of the sync hook, the site's id and the edge tap, one clock read
//! and a push into this thread's wait-free single-producer ring ([`rtrb`]). No lock, no
//! syscall, no allocation. The sampler thread drains every ring when it wakes. Registration
//! of a site or a thread takes a lock, once.

// Without the profiler nothing drains the rings or reads the log: its side is unused.
#![cfg_attr(not(feature = "profiler"), allow(dead_code))]

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use crate::clock;
use crate::spanlog::{Event, EventKind, LATE, SiteId, SiteInfo, SpanLog};

/// True while a profiler runs. The only thing an idle span reads.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Events each thread's ring holds between two drains (16 bytes each). The sampler drains at
/// about 1 kHz, so a thread would need over 30 million spans a second to overflow; overflow is
/// counted and reported, never silent. Settable for tests of overflow
/// (`__private::set_span_ring_capacity`); a thread keeps the size it registered with.
static RING_CAPACITY: AtomicUsize = AtomicUsize::new(1 << 16);
const EXIT_BIT: u32 = 1 << 31;
/// Set on the first edge a thread records after dropping spans: the spans it dropped ran
/// inside whatever span it had open then, whose figures hold their time and energy.
const LOSS_BIT: u32 = 1 << 30;
const SITE_BITS: u32 = LOSS_BIT - 1;
/// A guard's site for a span dropped whole: no room was left for it and the exits of the
/// spans open around it. Its exit, and everything entered inside it, is dropped too (and
/// counted), so what is recorded always nests as it ran.
const SKIPPED: u32 = u32::MAX;
/// Set in an exit's depth when its guard was dropped after its span had ended: an enclosing
/// guard was dropped first, or the bench harness found it still open when the iteration
/// that entered it returned. The exit closes nothing; it tells the log the span ran.
const LATE_BIT: u32 = 1 << 31;
/// Spans nested deeper than this are dropped (and counted): the log stores depths in 15 bits.
const MAX_DEPTH: u32 = LATE as u32 - 1;
/// The site of a cut ([`EventKind::Cut`]): no site has id 0.
const CUT_SITE: u32 = 0;
/// The site of a count of operations (the count in `raw`, the span's depth in `depth`): no
/// site is given this id.
const OPS_SITE: u32 = SITE_BITS;
/// `Local::skip_from` while no span is being dropped.
const NOT_SKIPPING: u32 = u32::MAX;
/// Bumped by every profiler start: a thread's ring bookkeeping from an earlier profile
/// (spans it left open then) starts afresh.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Sets the ring size of threads that register from now on (at least 4 events).
pub fn set_span_ring_capacity(events: usize) {
    RING_CAPACITY.store(events.max(4), Relaxed);
}

/// A new profile starts: threads' ring bookkeeping resets at their next span edge.
pub(crate) fn new_generation() {
    GENERATION.fetch_add(1, Relaxed);
}

/// One place in the source code that opens a span. Created by `#[measure_energy]` and
/// [`span!`](crate::span!) as a `static`; its id is interned on first use.
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    module: &'static str,
    file: &'static str,
    line: u32,
    /// 0 until interned; then an index + 1 into the registry's site table.
    id: AtomicU32,
}

impl Site {
    /// A new, not yet interned site.
    pub const fn new(name: &'static str, module: &'static str, file: &'static str, line: u32) -> Self {
        Site { name, module, file, line, id: AtomicU32::new(0) }
    }
}

/// Indexes an [`IndexedSite`] tells apart; higher ones share the last site, named `name.256+`.
pub const SITE_INDEXES: usize = 256;

/// One place in the source code that opens a span per index: layer 0 and layer 5 of a model
/// run the same code, yet each is a span of its own, `layer.0` and `layer.5`. Created by
/// [`span!`](crate::span!)`("layer", i)` and `#[measure_energy(index = i)]` as a `static`;
/// each index's site is interned on its first use (its name formatted once, then never
/// again), so entering one costs what entering a plain site does. Each such `static` holds
/// 257 ids (about 1 KB).
#[derive(Debug)]
pub struct IndexedSite {
    site: Site,
    /// 0 until interned; then the site id of each index, the last for every higher one.
    ids: [AtomicU32; SITE_INDEXES + 1],
}

impl IndexedSite {
    /// A new site, no index interned yet.
    pub const fn new(name: &'static str, module: &'static str, file: &'static str, line: u32) -> Self {
        IndexedSite {
            site: Site::new(name, module, file, line),
            ids: [const { AtomicU32::new(0) }; SITE_INDEXES + 1],
        }
    }
}

/// Enters the span of `index` at `site`. Prefer `span!("name", index)` or
/// `#[measure_energy(index = ...)]`.
#[inline(always)]
pub fn enter_indexed(site: &'static IndexedSite, index: usize) -> SpanGuard {
    if !ACTIVE.load(Relaxed) {
        return SpanGuard { site: 0, generation: 0, depth: 0, serial: 0, _not_send: PhantomData };
    }
    let slot = index.min(SITE_INDEXES);
    let mut id = site.ids[slot].load(Relaxed);
    if id == 0 {
        id = intern_indexed(site, slot);
    }
    enter_id(id)
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEvent {
    raw: u64,
    /// The site id, with [`EXIT_BIT`] set on exit and [`LOSS_BIT`] after a drop.
    site: u32,
    /// How many spans of the thread were open around this one (recorded or dropped), with
    /// [`LATE_BIT`] on a late exit. Exits are matched to their enter by it, so recursion and
    /// forgotten guards cannot pair an exit with the wrong enter.
    depth: u32,
}

// Ring sizes are stated at 16 bytes an event: the depth took what was padding.
const _: () = assert!(size_of::<RawEvent>() == 16);

impl RawEvent {
    /// Its kind and its depth as the log keeps it.
    fn decode(&self) -> (EventKind, u16) {
        let kind = match (self.site & EXIT_BIT != 0, self.site & SITE_BITS) {
            (true, _) => EventKind::Exit,
            (false, CUT_SITE) => EventKind::Cut,
            (false, _) => EventKind::Enter,
        };
        // Below `MAX_DEPTH`, which fits: deeper spans are never recorded.
        let depth = (self.depth & !LATE_BIT) as u16 | if self.depth & LATE_BIT != 0 { LATE } else { 0 };
        (kind, depth)
    }
}

/// Leaves its span when dropped. Not `Send`: a span is entered and left on one thread.
#[must_use = "the span ends when this guard is dropped; bind it with `let _span = ...`"]
#[derive(Debug)]
pub struct SpanGuard {
    /// 0 when the span was entered with no profiler running.
    site: u32,
    /// The profile it was entered in: a guard that outlives its profile leaves nothing in
    /// a later one (its exit would find no room kept for it, and unbalance the count).
    generation: u32,
    /// Spans open around it on its thread when it was entered.
    depth: u32,
    /// Its enter's serial number on its thread (see `Local::serials`).
    serial: u32,
    _not_send: PhantomData<*const ()>,
}

/// A `fn()` the profiler calls at every span edge (e.g. a device synchronise), stored as a
/// pointer; null for none.
static SYNC_HOOK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Sets (or clears) the hook called at every span edge while a profiler runs.
pub(crate) fn set_sync_hook(hook: Option<fn()>) {
    SYNC_HOOK.store(hook.map_or(std::ptr::null_mut(), |f| f as *mut ()), Relaxed);
}

/// Sees every span edge recorded while a profiler runs: `(thread, time since the profile
/// started, site id, enter or exit, depth)`, the depth as in [`Event`]. Only the simulated
/// source sets one, to know which layer runs.
pub(crate) type EdgeTap = fn(u32, crate::units::Nanos, u32, EventKind, u16);

/// The edge tap as a pointer (null for none), and the raw start tick it converts times with.
static EDGE_TAP: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
static TAP_START_RAW: AtomicU64 = AtomicU64::new(0);

/// Sets (or clears) the edge tap.
pub(crate) fn set_edge_tap(tap: Option<EdgeTap>) {
    EDGE_TAP.store(tap.map_or(std::ptr::null_mut(), |f| f as *mut ()), Relaxed);
}

/// The raw tick edge taps count from (the running profile's start).
pub(crate) fn set_tap_origin(start_raw: u64) {
    TAP_START_RAW.store(start_raw, Relaxed);
}

/// The name of interned site `id`, if there is one.
pub(crate) fn site_name(id: u32) -> Option<&'static str> {
    registry().sites.get(id.checked_sub(1)? as usize).map(|s| s.name)
}

/// Hands an edge to the tap, if one is set. Kept out of line: only the simulator sets a tap,
/// and a real profile's span path should carry no more than this one load and branch.
#[inline(always)]
fn run_edge_tap(thread: u32, event: RawEvent) {
    let tap = EDGE_TAP.load(Relaxed);
    if !tap.is_null() {
        call_edge_tap(tap, thread, event);
    }
}

#[cold]
#[inline(never)]
fn call_edge_tap(tap: *mut (), thread: u32, event: RawEvent) {
    // SAFETY: EDGE_TAP only ever holds null or a pointer made from an `EdgeTap` above.
    let tap: EdgeTap = unsafe { std::mem::transmute::<*mut (), EdgeTap>(tap) };
    let t = clock::since(TAP_START_RAW.load(Relaxed), event.raw);
    let (kind, depth) = event.decode();
    tap(thread, t, event.site & SITE_BITS, kind, depth);
}

#[inline]
fn run_sync_hook() {
    let hook = SYNC_HOOK.load(Relaxed);
    if !hook.is_null() {
        // SAFETY: SYNC_HOOK only ever holds null or a pointer made from a `fn()` above.
        let hook: fn() = unsafe { std::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// Enters a span at `site`. Prefer `#[measure_energy]` or [`span!`](crate::span!).
///
/// Only the check of [`ACTIVE`] is forced inline: with no profiler running, that relaxed
/// load and a branch are all a span costs.
#[inline(always)]
pub fn enter(site: &'static Site) -> SpanGuard {
    if !ACTIVE.load(Relaxed) {
        return SpanGuard { site: 0, generation: 0, depth: 0, serial: 0, _not_send: PhantomData };
    }
    enter_active(site)
}

#[inline]
fn enter_active(site: &'static Site) -> SpanGuard {
    let mut id = site.id.load(Relaxed);
    if id == 0 {
        id = intern(site);
    }
    enter_id(id)
}

#[inline]
fn enter_id(id: u32) -> SpanGuard {
    run_sync_hook();
    let generation = GENERATION.load(Relaxed);
    let (site, depth, serial) = push_enter(clock::raw_now(), id, generation);
    SpanGuard { site, generation, depth, serial, _not_send: PhantomData }
}

impl Drop for SpanGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if self.site != 0 && ACTIVE.load(Relaxed) {
            self.exit();
        }
    }
}

impl SpanGuard {
    /// Kept out of line: inlined, its body made the guard's drop a call with a full prologue
    /// even with no profiler running (2.6 ns a span instead of 0.6).
    #[inline(never)]
    fn exit(&self) {
        run_sync_hook();
        let generation = GENERATION.load(Relaxed);
        if self.generation != generation {
            // Entered under an earlier profile: not this one's to record or count.
            return;
        }
        push_exit(clock::raw_now(), self);
    }
}

/// A span whose edges call `sync` first: what `#[measure_energy(sync = f)]` makes.
#[must_use = "the span ends when this guard is dropped"]
#[derive(Debug)]
pub struct SyncedGuard {
    sync: fn(),
    // Dropped after `Drop::drop` below has synchronised.
    inner: SpanGuard,
}

/// Synchronises with `sync`, then enters a span at `site`; leaving synchronises again first.
/// With no profiler running, `sync` is not called.
#[inline]
pub fn enter_synced(site: &'static Site, sync: fn()) -> SyncedGuard {
    if ACTIVE.load(Relaxed) {
        sync();
    }
    SyncedGuard { sync, inner: enter(site) }
}

/// [`enter_synced`] for the span of `index` at `site`.
pub fn enter_indexed_synced(site: &'static IndexedSite, index: usize, sync: fn()) -> SyncedGuard {
    if ACTIVE.load(Relaxed) {
        sync();
    }
    SyncedGuard { sync, inner: enter_indexed(site, index) }
}

impl Drop for SyncedGuard {
    #[inline]
    fn drop(&mut self) {
        if self.inner.site != 0 && ACTIVE.load(Relaxed) {
            (self.sync)();
        }
    }
}

/// A future whose every poll runs inside a span: what `#[measure_energy]` makes of an `async fn`.
#[derive(Debug)]
pub struct Instrumented<F> {
    site: FutureSite,
    inner: F,
}

#[derive(Clone, Copy, Debug)]
enum FutureSite {
    Plain(&'static Site),
    Indexed(&'static IndexedSite, usize),
}

impl<F> Instrumented<F> {
    /// Wraps `inner`.
    pub fn new(site: &'static Site, inner: F) -> Self {
        Instrumented { site: FutureSite::Plain(site), inner }
    }

    /// Wraps `inner` in the span of `index` at `site`.
    pub fn new_indexed(site: &'static IndexedSite, index: usize, inner: F) -> Self {
        Instrumented { site: FutureSite::Indexed(site, index), inner }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and
        // `Instrumented` has no Drop impl and is not Unpin-dependent.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = match this.site {
            FutureSite::Plain(site) => enter(site),
            FutureSite::Indexed(site, index) => enter_indexed(site, index),
        };
        // SAFETY: see above; `this.inner` stays where the pinned `self` put it.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx)
    }
}

struct Local {
    producer: rtrb::Producer<RawEvent>,
    dropped: Arc<AtomicU64>,
    index: u32,
    /// Guards not yet dropped (recorded or not): the next span's depth.
    depth: u32,
    /// The depth of the span being dropped whole (no room was left for it), or
    /// [`NOT_SKIPPING`]: spans entered inside it are dropped too.
    skip_from: u32,
    /// Free slots last seen; refreshed from the ring only when it runs short.
    free: usize,
    /// Spans were dropped since the last edge recorded: the next one carries [`LOSS_BIT`].
    lost: bool,
    /// The profile the counts above belong to.
    generation: u32,
    /// The serial number of the span open at each depth (the first [`SERIAL_DEPTHS`]): a
    /// guard whose depth now holds another span's was cut off (an enclosing guard dropped
    /// first, or the harness found it open after its iteration), and its exit is late, even
    /// where spans entered since fill its depth again.
    serials: [u32; SERIAL_DEPTHS],
    next_serial: u32,
}

/// Depths whose spans' serial numbers a thread keeps (256 bytes). Deeper, a cut-off guard is
/// known late only while its depth stays empty.
const SERIAL_DEPTHS: usize = 64;

impl Local {
    /// True if the ring has `n` free slots.
    #[inline]
    fn room_for(&mut self, n: usize) -> bool {
        if self.free < n {
            self.free = self.producer.slots();
        }
        self.free >= n
    }

    /// Recorded spans not yet left: the ring keeps room for their exits.
    #[inline]
    fn owed(&self) -> usize {
        self.depth.min(self.skip_from) as usize
    }

    /// Starts the counts afresh if a new profile began since they were kept.
    #[inline]
    fn sync(&mut self, generation: u32) {
        if self.generation != generation {
            (self.depth, self.skip_from, self.free, self.generation) = (0, NOT_SKIPPING, 0, generation);
            self.lost = false;
            self.cut(0);
        }
    }

    /// A serial number for a span entered at `depth`.
    #[inline]
    fn stamp(&mut self, depth: u32) -> u32 {
        self.next_serial = self.next_serial.wrapping_add(1);
        if let Some(s) = self.serials.get_mut(depth as usize) {
            *s = self.next_serial;
        }
        self.next_serial
    }

    /// Whether the guard entered at `depth` with `serial` has been cut off.
    #[inline]
    fn cut_off(&self, depth: u32, serial: u32) -> bool {
        depth >= self.depth || self.serials.get(depth as usize).is_some_and(|&s| s != serial)
    }

    /// Spans at `depth` and above are gone: their exits are no longer owed, and the
    /// guards, if they are ever dropped, exit late.
    #[inline]
    fn cut(&mut self, depth: u32) {
        self.depth = depth;
        if self.skip_from >= depth {
            self.skip_from = NOT_SKIPPING;
        }
    }

    /// Counts an edge dropped.
    #[inline]
    fn drop_edge(&mut self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Pushes an edge the ring has room for, marked if spans were dropped before it.
    #[inline]
    fn record(&mut self, event: RawEvent) -> bool {
        let pushed = self.record_untapped(event);
        if pushed {
            run_edge_tap(self.index, event);
        }
        pushed
    }

    #[inline]
    fn record_untapped(&mut self, mut event: RawEvent) -> bool {
        if self.lost {
            event.site |= LOSS_BIT;
        }
        if self.producer.push(event).is_err() {
            // Never happens: room was checked, and the ring only frees room meanwhile.
            // Counted all the same.
            self.drop_edge();
            return false;
        }
        self.lost = false;
        self.free = self.free.saturating_sub(1);
        true
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Records an enter; returns the guard's site ([`SKIPPED`] if the span is dropped), depth and
/// serial number.
///
/// Drops happen at span granularity: an enter is recorded only if the ring has room for it,
/// its exit and the exits of every span open around it, so a recorded span's exit is never
/// lost; an enter that finds no room is dropped with its exit and everything inside it.
#[inline]
fn push_enter(raw: u64, site: u32, generation: u32) -> (u32, u32, u32) {
    // `try_with` fails only while this thread's locals are being destroyed; a span edge then
    // has nowhere to go and is dropped.
    LOCAL
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            let Some(local) = slot.as_mut() else {
                let local = register_thread(&mut slot, RawEvent { raw, site, depth: 0 }, generation);
                return (site, 0, local.stamp(0));
            };
            local.sync(generation);
            let depth = local.depth;
            local.depth = depth.saturating_add(1);
            let serial = local.stamp(depth);
            // Room for this enter, its exit and the exits of the `depth` spans around it.
            let room =
                local.skip_from == NOT_SKIPPING && depth < MAX_DEPTH && local.room_for(depth as usize + 2);
            if room && local.record(RawEvent { raw, site, depth }) {
                return (site, depth, serial);
            }
            if !room {
                // (A failed `record` counted itself.)
                local.drop_edge();
            }
            if local.skip_from == NOT_SKIPPING {
                local.skip_from = depth;
            }
            local.lost = true;
            (SKIPPED, depth, serial)
        })
        .unwrap_or((SKIPPED, 0, 0))
}

/// Records a guard's exit. Every span above it ends too (their guards were dropped later, or
/// forgotten). A guard whose span had ended so already exits late: recorded if there is room,
/// to tell the log the span was not forgotten, but it closes nothing.
#[inline]
fn push_exit(raw: u64, guard: &SpanGuard) {
    let _ = LOCAL.try_with(|cell| {
        let mut local = cell.borrow_mut();
        let Some(local) = local.as_mut() else { return };
        if local.generation != guard.generation {
            return;
        }
        let depth = guard.depth;
        if local.cut_off(depth, guard.serial) {
            if guard.site == SKIPPED || !local.room_for(local.owed() + 1) {
                local.drop_edge();
                return;
            }
            local.record(RawEvent { raw, site: guard.site | EXIT_BIT, depth: depth | LATE_BIT });
            return;
        }
        if depth + 1 < local.depth {
            local.cut(depth + 1);
        }
        local.depth = depth;
        if guard.site == SKIPPED {
            if local.skip_from >= depth {
                local.skip_from = NOT_SKIPPING;
            }
            local.drop_edge();
            return;
        }
        local.skip_from = NOT_SKIPPING;
        local.record(RawEvent { raw, site: guard.site | EXIT_BIT, depth });
    });
}

/// A count of operations, as `#[measure_energy(ops = ...)]` and [`add_ops`] take it: any
/// primitive number (a negative or fractional count is clamped and rounded down).
#[diagnostic::on_unimplemented(
    message = "a count of operations (`ops = ...`, `add_ops`) is a number, not `{Self}`",
    label = "a count of operations, e.g. `2 * rows * cols`"
)]
pub trait OpsCount {
    /// The count.
    fn ops(self) -> u64;
}

macro_rules! ops_count {
    ($($t:ty),*) => {$(
        impl OpsCount for $t {
            #[inline(always)]
            fn ops(self) -> u64 {
                u64::try_from(self).unwrap_or(if self > 0 { u64::MAX } else { 0 })
            }
        }
    )*};
}
ops_count!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl OpsCount for f64 {
    #[inline(always)]
    fn ops(self) -> u64 {
        // Saturates, and NaN is 0.
        self as u64
    }
}

impl OpsCount for f32 {
    #[inline(always)]
    fn ops(self) -> u64 {
        self as u64
    }
}

/// True while a profiler runs (what `#[measure_energy(ops = ...)]` checks before computing
/// its count).
#[inline(always)]
pub fn profiling() -> bool {
    ACTIVE.load(Relaxed)
}

/// Declares `ops` operations (e.g. multiply-adds) done in the innermost span open on this
/// thread. Reports give each span path its operations per call and per joule. What
/// `#[measure_energy(ops = ...)]` calls on entering its span; call it inside a span whose
/// work is known only as it runs. Outside any span, or with no profiler running, it does
/// nothing; like a span edge it takes no lock and makes no syscall.
#[inline]
pub fn add_ops(ops: impl OpsCount) {
    if ACTIVE.load(Relaxed) {
        add_ops_active(ops.ops());
    }
}

#[inline(never)]
fn add_ops_active(ops: u64) {
    let generation = GENERATION.load(Relaxed);
    let _ = LOCAL.try_with(|cell| {
        let mut slot = cell.borrow_mut();
        let Some(local) = slot.as_mut() else { return };
        if local.generation != generation || local.depth == 0 {
            return;
        }
        let depth = local.depth - 1;
        if local.skip_from <= depth {
            // Its span is being dropped: the count goes with it.
            return;
        }
        if !local.room_for(local.owed() + 1) {
            local.drop_edge();
            local.lost = true;
            return;
        }
        local.record_untapped(RawEvent { raw: ops, site: OPS_SITE, depth });
    });
}

/// Spans open on this thread (guards not yet dropped) in the running profile.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub(crate) fn open_depth() -> u32 {
    let generation = GENERATION.load(Relaxed);
    LOCAL
        .try_with(|cell| cell.borrow().as_ref().filter(|l| l.generation == generation).map_or(0, |l| l.depth))
        .unwrap_or(0)
}

/// Ends this thread's spans at `depth` and above: the code that entered them has returned,
/// so their guards were forgotten (`mem::forget`, a leak). Records a cut, so that the log
/// knows; a guard that turns up after all exits late. True if any span was open there.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub(crate) fn cut_above(depth: u32) -> bool {
    let generation = GENERATION.load(Relaxed);
    LOCAL
        .try_with(|cell| match cell.borrow_mut().as_mut() {
            Some(l) if l.generation == generation && l.depth > depth => {
                l.cut(depth);
                // Room for it and the exits still owed; else the next enter, whose depth is
                // lower than the spans the log has open, tells the log as well.
                if l.room_for(l.owed() + 1) {
                    l.record(RawEvent { raw: clock::raw_now(), site: CUT_SITE, depth });
                }
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

#[cold]
#[inline(never)]
fn register_thread(slot: &mut Option<Local>, first: RawEvent, generation: u32) -> &mut Local {
    let (mut producer, consumer) = rtrb::RingBuffer::new(RING_CAPACITY.load(Relaxed));
    let dropped = Arc::new(AtomicU64::new(0));
    let _ = producer.push(first);
    let mut reg = registry();
    let index = reg.next_thread;
    reg.next_thread += 1;
    let name = std::thread::current().name().map(str::to_owned);
    reg.threads.push(Queue { index, name, consumer, dropped: dropped.clone(), ended: false });
    drop(reg);
    let free = producer.slots();
    let local = slot.insert(Local {
        producer,
        dropped,
        index,
        depth: 1,
        skip_from: NOT_SKIPPING,
        free,
        lost: false,
        generation,
        serials: [0; SERIAL_DEPTHS],
        next_serial: 0,
    });
    run_edge_tap(local.index, first);
    local
}

#[cold]
#[inline(never)]
fn intern(site: &'static Site) -> u32 {
    let mut reg = registry();
    let id = site.id.load(Relaxed);
    if id != 0 {
        return id;
    }
    reg.sites.push(site);
    let id = u32::try_from(reg.sites.len()).expect("fewer than 2^30 span sites");
    assert!(id < OPS_SITE, "fewer than 2^30 - 1 span sites");
    site.id.store(id, Relaxed);
    id
}

#[cold]
#[inline(never)]
fn intern_indexed(site: &'static IndexedSite, slot: usize) -> u32 {
    let mut reg = registry();
    let id = site.ids[slot].load(Relaxed);
    if id != 0 {
        return id;
    }
    let base = &site.site;
    let name = if slot == SITE_INDEXES {
        format!("{}.{SITE_INDEXES}+", base.name)
    } else {
        format!("{}.{slot}", base.name)
    };
    // At most `SITE_INDEXES + 1` a site, once a process: the registry keeps `&'static Site`s.
    let leaked: &'static Site =
        Box::leak(Box::new(Site::new(Box::leak(name.into_boxed_str()), base.module, base.file, base.line)));
    reg.sites.push(leaked);
    let id = u32::try_from(reg.sites.len()).expect("fewer than 2^30 span sites");
    assert!(id < OPS_SITE, "fewer than 2^30 - 1 span sites");
    leaked.id.store(id, Relaxed);
    site.ids[slot].store(id, Relaxed);
    id
}

struct Queue {
    index: u32,
    name: Option<String>,
    consumer: rtrb::Consumer<RawEvent>,
    dropped: Arc<AtomicU64>,
    /// Its thread had exited when its ring was last read: nothing more will come.
    ended: bool,
}

struct Registry {
    sites: Vec<&'static Site>,
    threads: Vec<Queue>,
    next_thread: u32,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { sites: Vec::new(), threads: Vec::new(), next_thread: 0 });

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding this lock leaves the tables consistent (each push is whole).
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves every buffered span event into `log`, stamping it in nanoseconds since `start_raw`.
/// Threads that have exited are forgotten once their ring is empty.
pub(crate) fn drain_into(log: &mut SpanLog, start_raw: u64) {
    let mut reg = registry();
    let reg = &mut *reg;
    for site in &reg.sites[log.sites.len()..] {
        log.sites.push(SiteInfo {
            name: site.name.to_owned(),
            module: site.module.to_owned(),
            file: site.file.to_owned(),
            line: site.line,
        });
    }
    for queue in &mut reg.threads {
        // Seen before the ring is read, so that an ended thread's last edges are read too.
        let ended = queue.consumer.is_abandoned();
        queue.ended = ended;
        let n = queue.consumer.slots();
        let dropped = queue.dropped.swap(0, Relaxed);
        if n == 0 && dropped == 0 {
            if ended && let Some(thread) = log.threads.iter_mut().find(|t| t.index == queue.index) {
                thread.ended = true;
            }
            continue;
        }
        let room = log.room();
        let thread = log.thread_mut(queue.index, queue.name.as_deref());
        thread.dropped += dropped;
        let mut stored = 0usize;
        if let Ok(chunk) = queue.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            for ev in a.iter().chain(b) {
                if ev.site & (EXIT_BIT | SITE_BITS) == OPS_SITE {
                    // A loss mark it carries passes to the next edge.
                    thread.lost |= ev.site & LOSS_BIT != 0;
                    if thread.store_ops(room.saturating_sub(stored), ev.depth as u16, ev.raw) {
                        stored += 1;
                    }
                    continue;
                }
                let (kind, depth) = ev.decode();
                let event = Event {
                    t: clock::since(start_raw, ev.raw),
                    site: SiteId(ev.site & SITE_BITS),
                    kind,
                    after_loss: ev.site & LOSS_BIT != 0,
                    depth,
                };
                if thread.store(room.saturating_sub(stored), event) {
                    stored += 1;
                }
            }
            chunk.commit_all();
        }
        thread.ended = ended;
        log.note_stored(stored);
    }
    // Only those seen ended before their ring was read are surely empty.
    reg.threads.retain(|q| !q.ended);
}

/// Throws away whatever the rings hold (events from before this profiler started).
pub(crate) fn discard_pending() {
    let mut reg = registry();
    for queue in &mut reg.threads {
        let n = queue.consumer.slots();
        if let Ok(chunk) = queue.consumer.read_chunk(n) {
            chunk.commit_all();
        }
        queue.dropped.store(0, Relaxed);
    }
}
