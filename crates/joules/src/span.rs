//! Span sites, guards and the per-thread event buffers.
//!
//! The hot path: entering a span is one relaxed load of [`ACTIVE`] when no profiler runs; when
//! one runs, relaxed loads of the sync hook, the site's id and the edge tap, one clock read
//! and a push into this thread's wait-free single-producer ring ([`rtrb`]). No lock, no
//! syscall, no allocation. The sampler thread drains every ring when it wakes. Registration
//! of a site or a thread takes a lock, once.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use crate::clock;
use crate::spanlog::{EventKind, SiteInfo, SpanLog};

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

#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEvent {
    raw: u64,
    /// The site id, with [`EXIT_BIT`] set on exit and [`LOSS_BIT`] after a drop.
    site: u32,
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
    _not_send: PhantomData<*const ()>,
}

/// A `fn()` the profiler calls at every span edge (e.g. a device synchronise), stored as a
/// pointer; null for none.
static SYNC_HOOK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Sets (or clears) the hook called at every span edge while a profiler runs.
pub(crate) fn set_sync_hook(hook: Option<fn()>) {
    SYNC_HOOK.store(hook.map_or(std::ptr::null_mut(), |f| f as *mut ()), Relaxed);
}

/// Sees every span edge while a profiler runs: `(thread, time since the profile started,
/// site id, enter or exit)`. Only the simulated source sets one, to know which layer runs.
pub(crate) type EdgeTap = fn(u32, crate::units::Nanos, u32, EventKind);

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
    let kind = if event.site & EXIT_BIT != 0 { EventKind::Exit } else { EventKind::Enter };
    let t = clock::since(TAP_START_RAW.load(Relaxed), event.raw);
    tap(thread, t, event.site & SITE_BITS, kind);
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
        return SpanGuard { site: 0, generation: 0, _not_send: PhantomData };
    }
    enter_active(site)
}

#[inline]
fn enter_active(site: &'static Site) -> SpanGuard {
    run_sync_hook();
    let mut id = site.id.load(Relaxed);
    if id == 0 {
        id = intern(site);
    }
    let generation = GENERATION.load(Relaxed);
    let accepted = push(RawEvent { raw: clock::raw_now(), site: id }, generation);
    SpanGuard { site: if accepted { id } else { SKIPPED }, generation, _not_send: PhantomData }
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
    #[inline]
    fn exit(&self) {
        run_sync_hook();
        let generation = GENERATION.load(Relaxed);
        if self.generation != generation {
            // Entered under an earlier profile: not this one's to record or count.
            return;
        }
        if self.site == SKIPPED {
            skipped_exit();
            return;
        }
        push(RawEvent { raw: clock::raw_now(), site: self.site | EXIT_BIT }, generation);
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
    site: &'static Site,
    inner: F,
}

impl<F> Instrumented<F> {
    /// Wraps `inner`.
    pub fn new(site: &'static Site, inner: F) -> Self {
        Instrumented { site, inner }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and
        // `Instrumented` has no Drop impl and is not Unpin-dependent.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = enter(this.site);
        // SAFETY: see above; `this.inner` stays where the pinned `self` put it.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx)
    }
}

struct Local {
    producer: rtrb::Producer<RawEvent>,
    dropped: Arc<AtomicU64>,
    index: u32,
    /// Spans entered and recorded, not yet left: the ring always keeps room for their exits.
    open: usize,
    /// Spans being dropped whole: one that found no room, and those entered inside it.
    skipping: usize,
    /// Free slots last seen; refreshed from the ring only when it runs short.
    free: usize,
    /// Spans were dropped since the last edge recorded: the next one carries [`LOSS_BIT`].
    lost: bool,
    /// The profile the counts above belong to.
    generation: u32,
}

impl Local {
    /// True if the ring has `n` free slots.
    #[inline]
    fn room_for(&mut self, n: usize) -> bool {
        if self.free < n {
            self.free = self.producer.slots();
        }
        self.free >= n
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Records `event`; false if an enter was dropped (with what it would enclose).
///
/// Drops happen at span granularity: an enter is recorded only if the ring has room for it,
/// its exit and the exits of every span open around it, so a recorded span's exit is never
/// lost; an enter that finds no room is dropped with its exit and everything inside it.
#[inline]
fn push(event: RawEvent, generation: u32) -> bool {
    // `try_with` fails only while this thread's locals are being destroyed; a span edge then
    // has nowhere to go and is dropped.
    LOCAL
        .try_with(|cell| {
            let mut local = cell.borrow_mut();
            match local.as_mut() {
                Some(local) => {
                    if local.generation != generation {
                        (local.open, local.skipping, local.free, local.generation) = (0, 0, 0, generation);
                        local.lost = false;
                    }
                    let exit = event.site & EXIT_BIT != 0;
                    if !exit && (local.skipping > 0 || !local.room_for(local.open + 2)) {
                        local.skipping += 1;
                        local.lost = true;
                        local.dropped.fetch_add(1, Relaxed);
                        return false;
                    }
                    let mut event = event;
                    if local.lost {
                        event.site |= LOSS_BIT;
                    }
                    if local.producer.push(event).is_err() {
                        // Never for an exit (room is kept for every open span's), nor for
                        // an enter (checked above, and the ring only frees room meanwhile);
                        // counted all the same, an enter as a span dropped whole.
                        local.dropped.fetch_add(1, Relaxed);
                        if !exit {
                            local.skipping += 1;
                        }
                        local.lost = true;
                        return false;
                    }
                    local.lost = false;
                    local.free = local.free.saturating_sub(1);
                    if exit {
                        local.open = local.open.saturating_sub(1);
                    } else {
                        local.open += 1;
                    }
                    run_edge_tap(local.index, event);
                    true
                }
                None => {
                    register_thread(&mut local, event);
                    if let Some(local) = local.as_ref() {
                        run_edge_tap(local.index, event);
                    }
                    true
                }
            }
        })
        .unwrap_or(false)
}

/// The exit of a span that was dropped whole.
#[cold]
#[inline(never)]
fn skipped_exit() {
    let _ = LOCAL.try_with(|cell| {
        if let Some(local) = cell.borrow_mut().as_mut() {
            local.skipping = local.skipping.saturating_sub(1);
            local.dropped.fetch_add(1, Relaxed);
        }
    });
}

#[cold]
#[inline(never)]
fn register_thread(slot: &mut Option<Local>, first: RawEvent) {
    let (mut producer, consumer) = rtrb::RingBuffer::new(RING_CAPACITY.load(Relaxed));
    let dropped = Arc::new(AtomicU64::new(0));
    let _ = producer.push(first);
    let mut reg = registry();
    let index = reg.next_thread;
    reg.next_thread += 1;
    let name = std::thread::current().name().map(str::to_owned);
    reg.threads.push(Queue { index, name, consumer, dropped: dropped.clone(), ended: false });
    let open = usize::from(first.site & EXIT_BIT == 0);
    let free = producer.slots();
    *slot = Some(Local {
        producer,
        dropped,
        index,
        open,
        skipping: 0,
        free,
        lost: false,
        generation: GENERATION.load(Relaxed),
    });
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
    assert!(id <= SITE_BITS, "fewer than 2^30 span sites");
    site.id.store(id, Relaxed);
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
        let mut stored = 0;
        if let Ok(chunk) = queue.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            for ev in a.iter().chain(b) {
                // A full log drops at span granularity too: an enter is kept only with room
                // for the exits of every span it would be open with; a dropped enter takes
                // its exit and what it encloses along.
                let (site, after_loss) = (ev.site & SITE_BITS, ev.site & LOSS_BIT != 0);
                if ev.site & EXIT_BIT != 0 {
                    if thread.skipping > 0 {
                        thread.skipping -= 1;
                        thread.dropped += 1;
                        continue;
                    }
                    thread.open = thread.open.saturating_sub(1);
                    thread.push_after(clock::since(start_raw, ev.raw), site, EventKind::Exit, after_loss);
                } else {
                    if thread.skipping > 0 || room < stored + thread.open + 2 {
                        thread.skipping += 1;
                        thread.dropped += 1;
                        thread.lost = true;
                        continue;
                    }
                    thread.open += 1;
                    thread.push_after(clock::since(start_raw, ev.raw), site, EventKind::Enter, after_loss);
                }
                stored += 1;
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
