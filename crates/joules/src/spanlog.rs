//! The spans of a profile, as time-stamped enter/exit events per thread.

// Without the profiler nothing drains the rings or reads the log: its side is unused.
#![cfg_attr(not(feature = "profiler"), allow(dead_code))]

use crate::units::Nanos;

/// Spans beyond this many events are counted as dropped rather than stored (16 bytes each):
/// a runaway span in a tight loop must not exhaust memory.
pub const MAX_EVENTS: usize = 1 << 24;

/// The log's size in events: [`MAX_EVENTS`], or less for tests of a full log
/// (`__private::set_span_log_capacity`).
static CAPACITY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_EVENTS);

/// Sets the size of logs (at most [`MAX_EVENTS`]). For tests.
#[doc(hidden)]
pub fn set_span_log_capacity(events: usize) {
    CAPACITY.store(events.min(MAX_EVENTS), std::sync::atomic::Ordering::Relaxed);
}

/// Identifies a span site within a [`SpanLog`] (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(pub u32);

/// Where a span comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteInfo {
    /// The span's name (the function's, or the one given).
    pub name: String,
    /// `module_path!()` at the site.
    pub module: String,
    /// `file!()` at the site.
    pub file: String,
    /// `line!()` at the site.
    pub line: u32,
}

/// Entering or leaving a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The span starts.
    Enter,
    /// The span ends.
    Exit,
    /// The thread's spans open at this depth and above end: the code that entered them
    /// returned without dropping their guards (`mem::forget`, a leak), as the bench harness
    /// finds after an iteration. Its site is `SiteId(0)`, no site.
    Cut,
}

/// Set in [`Event::depth`] of an exit that closes nothing: its guard was dropped after its
/// span had ended (an enclosing guard was dropped first, or the bench harness cut it). The
/// rest of the depth is its span's. It tells that the span was not forgotten.
pub const LATE: u16 = 1 << 15;

/// [`Event::depth`] of a late exit whose span's depth is not known (a log built by hand).
pub const LATE_EXIT: u16 = u16::MAX;

/// One span edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// When, since the profiler started.
    pub t: Nanos,
    /// Which site.
    pub site: SiteId,
    /// Enter or exit.
    pub kind: EventKind,
    /// Spans were dropped on this thread just before this edge: they ran inside the span
    /// the thread had open then, whose figures hold their time and energy.
    pub after_loss: bool,
    /// How many of the thread's spans were open around this one: an exit closes the span
    /// entered at its depth (and any left open above it), so recursion pairs every exit
    /// with its own enter. An enter at a depth where spans are still open ends them (their
    /// guards were found forgotten). [`LATE`] is set on an exit that closes nothing.
    pub depth: u16,
}

// The log's memory figures (16 bytes an event) hold with the depth in what was padding.
const _: () = assert!(size_of::<Event>() == 16);

impl Event {
    /// An exit that closes nothing (see [`LATE`]).
    pub fn is_late(&self) -> bool {
        self.kind == EventKind::Exit && self.depth & LATE != 0
    }

    /// The depth at which the open spans `open` (one per depth, innermost last, each known
    /// by its site) end at this edge: for an enter or a cut, its own depth; for an exit, the
    /// depth of the span it closes, if one is open there. Spans there and above end.
    pub fn ends_from<T>(&self, open: &[T], site_of: impl Fn(&T) -> SiteId) -> Option<usize> {
        let depth = usize::from(self.depth);
        match self.kind {
            EventKind::Enter | EventKind::Cut => Some(depth.min(open.len())),
            EventKind::Exit => open.get(depth).filter(|&s| site_of(s) == self.site).map(|_| depth),
        }
    }
}

/// The events of one thread, in the order they happened.
#[derive(Clone, Debug, Default)]
pub struct ThreadEvents {
    /// The profiler's index for the thread (stable for the thread's life).
    pub index: u32,
    /// The thread's name, if it has one.
    pub name: Option<String>,
    /// Its span edges, in time order.
    pub events: Vec<Event>,
    /// Events lost because the thread's ring or the log was full.
    pub dropped: u64,
    /// Of `dropped`, those lost before a benchmark's samples: its set-up and warm-up (whose
    /// spans no figure uses).
    pub dropped_in_warm_up: u64,
    /// `dropped` when the running benchmark was given its share of the log.
    dropped_before: u64,
    /// Where the recorded spans not yet left were entered (one per depth): the log keeps
    /// room for their exits.
    pub(crate) open_at: Vec<usize>,
    /// The depth of the span being dropped whole because the log was full: spans inside it
    /// are dropped too.
    pub(crate) skip_from: Option<u16>,
    /// The sites of the spans open and where they were entered, for logs built by hand
    /// ([`SpanLog::push`]).
    built: Vec<(SiteId, usize)>,
    /// Operations declared in spans (`#[measure_energy(ops = ...)]`, [`add_ops`](crate::add_ops)):
    /// the position in `events` of the span's enter, and how many. A span may have several.
    pub ops: Vec<(usize, u64)>,
    /// Spans were dropped since the last edge stored: the next one is marked.
    pub(crate) lost: bool,
    /// The thread has exited and its ring is drained: every guard it made has been dropped,
    /// so a span it left open was forgotten (`mem::forget`), not still running.
    pub ended: bool,
    /// Spans whose guard was never dropped (forgotten with `mem::forget`, or leaked), left
    /// out of `events` by [`SpanLog::leave_out_forgotten`]: for each, the position in
    /// `events` of the first edge after it, and its site. Their time is the enclosing span's.
    pub forgotten: Vec<(usize, SiteId)>,
}

/// Every span edge seen while a profiler ran.
#[derive(Clone, Debug, Default)]
pub struct SpanLog {
    /// Sites by id (`sites[id - 1]`).
    pub sites: Vec<SiteInfo>,
    /// Per-thread events. Threads are only ever appended, so a thread keeps its position.
    pub threads: Vec<ThreadEvents>,
    len: usize,
    /// Thread index -> position in `threads`, so that a sampler's look at n threads' rings
    /// costs O(n), not O(n²). Checked on use (`threads` is public).
    positions: std::collections::HashMap<u32, usize>,
    /// Events stored at most, if less than [`MAX_EVENTS`]: the share of the log the running
    /// benchmark may fill.
    cap: Option<usize>,
}

impl SpanLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a site by name (for logs built by hand, e.g. in tests) and returns its id.
    pub fn add_site(&mut self, name: &str) -> SiteId {
        self.sites.push(SiteInfo {
            name: name.to_owned(),
            module: String::new(),
            file: String::new(),
            line: 0,
        });
        SiteId(self.sites.len() as u32)
    }

    /// The site with this id.
    pub fn site(&self, id: SiteId) -> &SiteInfo {
        &self.sites[id.0 as usize - 1]
    }

    /// Appends an event to thread `index` (created if new).
    pub fn push(&mut self, index: u32, t: Nanos, site: SiteId, kind: EventKind) {
        self.thread_mut(index, None).push(t, site.0, kind);
        self.len += 1;
    }

    /// Declares `ops` operations in the innermost span open on thread `index` (for logs built
    /// by hand); false if none is open.
    pub fn add_ops(&mut self, index: u32, ops: u64) -> bool {
        let thread = self.thread_mut(index, None);
        let Some(&(_, at)) = thread.built.last() else { return false };
        thread.ops.push((at, ops));
        self.len += 1;
        true
    }

    /// Total events stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events lost to full buffers, over all threads.
    pub fn dropped(&self) -> u64 {
        self.threads.iter().map(|t| t.dropped).sum()
    }

    /// Of [`dropped`](Self::dropped), those lost before benchmarks' samples (set-up and
    /// warm-up).
    pub fn dropped_in_warm_up(&self) -> u64 {
        self.threads.iter().map(|t| t.dropped_in_warm_up).sum()
    }

    pub(crate) fn thread_mut(&mut self, index: u32, name: Option<&str>) -> &mut ThreadEvents {
        let known = self
            .positions
            .get(&index)
            .copied()
            .filter(|&p| self.threads.get(p).is_some_and(|t| t.index == index));
        let pos = match known.or_else(|| self.threads.iter().position(|t| t.index == index)) {
            Some(pos) => pos,
            None => {
                self.threads.push(ThreadEvents {
                    index,
                    name: name.map(str::to_owned),
                    ..ThreadEvents::default()
                });
                self.threads.len() - 1
            }
        };
        self.positions.insert(index, pos);
        &mut self.threads[pos]
    }

    pub(crate) fn room(&self) -> usize {
        let size = CAPACITY.load(std::sync::atomic::Ordering::Relaxed);
        self.cap.unwrap_or(size).min(size).saturating_sub(self.len)
    }

    /// Lets the next `parts`-th of the room left be filled, and no more (one benchmark's
    /// share, with `parts` benchmarks still to run, so that none can starve the next);
    /// returns how many events that is. Room a benchmark leaves unused passes on.
    pub(crate) fn share_room(&mut self, parts: usize) -> usize {
        for thread in &mut self.threads {
            thread.dropped_before = thread.dropped;
        }
        self.cap = None;
        let share = self.room() / parts.max(1);
        self.cap = Some(self.len + share);
        share
    }

    /// Removes every span that began and ended within `[from, until]` (e.g. a warm-up, whose
    /// spans no figure uses), freeing its room; returns how many edges went. A span whose
    /// guard was forgotten ends at the cut (or shallower enter) after it. A thread whose
    /// edges there do not nest cleanly (an exit that is not the innermost span's) keeps them
    /// all.
    pub(crate) fn discard_within(&mut self, from: Nanos, until: Nanos) -> usize {
        let mut removed = 0;
        for thread in &mut self.threads {
            // The warm-up began after the share was given (threads seen later start at 0).
            thread.dropped_in_warm_up += thread.dropped - thread.dropped_before.min(thread.dropped);
            thread.dropped_before = thread.dropped;
            let lo = thread.events.partition_point(|e| e.t < from);
            let hi = thread.events.partition_point(|e| e.t <= until);
            // The positions of complete spans in the window (outermost ones, with all they
            // hold), and where each begins.
            let (mut open, mut run, mut gone, mut starts) =
                (Vec::<(u16, SiteId)>::new(), Vec::new(), Vec::new(), Vec::new());
            let mut clean = true;
            for (i, ev) in thread.events.iter().enumerate().take(hi).skip(lo) {
                match ev.kind {
                    EventKind::Enter | EventKind::Cut => {
                        // A cut, or an enter at a depth still open, ends the spans open there
                        // (their guards were forgotten): the run they began in may be whole.
                        if open.last().is_some_and(|&(d, _)| ev.depth <= d) {
                            while open.last().is_some_and(|&(d, _)| d >= ev.depth) {
                                open.pop();
                            }
                            if ev.kind == EventKind::Cut {
                                run.push(i);
                            }
                            if open.is_empty() {
                                starts.push(run[0]);
                                gone.append(&mut run);
                            }
                        } else if ev.kind == EventKind::Cut && !open.is_empty() {
                            run.push(i);
                        }
                        if ev.kind == EventKind::Enter {
                            open.push((ev.depth, ev.site));
                            run.push(i);
                        }
                    }
                    EventKind::Exit if open.last() == Some(&(ev.depth, ev.site)) => {
                        open.pop();
                        run.push(i);
                        if open.is_empty() {
                            starts.push(run[0]);
                            gone.append(&mut run);
                        }
                    }
                    // A late exit closes nothing: it goes with the run it falls in.
                    EventKind::Exit if ev.is_late() => {
                        if !open.is_empty() {
                            run.push(i);
                        }
                    }
                    // The exit of a span open before the window: what follows is outside it.
                    EventKind::Exit if open.is_empty() => {}
                    // An exit that is not the innermost span's (late, or ending more).
                    EventKind::Exit => clean = false,
                }
                if !clean {
                    break;
                }
            }
            if !clean || gone.is_empty() {
                continue;
            }
            // Spans lost before a removed span's enter were lost in what was open around it,
            // which stays; those lost inside it went with it.
            let ops = thread.remove(&gone, |i| starts.binary_search(&i).is_ok());
            removed += gone.len();
            self.len -= ops;
        }
        self.len -= removed;
        removed
    }

    /// Forgets every edge at or before `cut` but the enters of the spans still open there
    /// (a live profile, once the stretch up to `cut` is folded): what is left replays to the
    /// same open spans at `cut`, so later stretches attribute as before, and memory holds
    /// only what came since. Returns how many entries went.
    pub(crate) fn forget_before(&mut self, cut: Nanos) -> usize {
        let mut removed = 0;
        for thread in &mut self.threads {
            let upto = thread.events.partition_point(|e| e.t <= cut);
            // The spans open at the cut, as the sweep would find them: (site, position).
            let mut open: Vec<(SiteId, usize)> = Vec::new();
            for (i, ev) in thread.events[..upto].iter().enumerate() {
                if let Some(at) = ev.ends_from(&open, |&(site, _)| site) {
                    open.truncate(at);
                    if ev.kind == EventKind::Enter {
                        open.push((ev.site, i));
                    }
                }
            }
            let keep: Vec<usize> = open.iter().map(|&(_, i)| i).collect();
            let gone: Vec<usize> = (0..upto).filter(|i| keep.binary_search(i).is_err()).collect();
            if !gone.is_empty() {
                // Losses marked on forgotten edges were folded with them.
                let ops = thread.remove(&gone, |_| false);
                removed += gone.len() + ops;
            }
            // A thread that has exited keeps its place (threads are found by position) but
            // not its buffer: a thread-per-connection service keeps a few hundred bytes a
            // thread, not the most edges each ever held.
            if thread.ended && thread.events.is_empty() {
                thread.events = Vec::new();
            }
        }
        self.len -= removed;
        removed
    }

    pub(crate) fn note_stored(&mut self, n: usize) {
        self.len += n;
    }

    /// Leaves out spans whose guard was never dropped (`mem::forget`, a leak), so that the
    /// spans their thread entered afterwards nest where they ran, not under them.
    ///
    /// A guard is known to be gone when its span was ended by an enclosing span's exit and
    /// its own exit never came, or when its thread ended with the span open. (A guard
    /// dropped after the enclosing one's exits later: that span ran, and stays.) A span
    /// still open at the end on a live thread may be running still, so it stays, flagged by
    /// [`SpanTree`](crate::attribute::SpanTree) as not left.
    pub fn leave_out_forgotten(&mut self) {
        let mut removed = 0;
        for thread in &mut self.threads {
            removed += thread.leave_out_forgotten();
        }
        self.len -= removed;
    }
}

impl ThreadEvents {
    /// Appends an edge to a log built by hand, its depth found by matching its site (a cut
    /// ends every open span).
    pub(crate) fn push(&mut self, t: Nanos, site: u32, kind: EventKind) {
        let site = SiteId(site);
        let depth = match kind {
            EventKind::Cut => {
                self.built.clear();
                0
            }
            EventKind::Enter => {
                self.built.push((site, self.events.len()));
                self.built.len() - 1
            }
            EventKind::Exit => match self.built.iter().rposition(|&(s, _)| s == site) {
                Some(at) => {
                    self.built.truncate(at);
                    at
                }
                None => usize::from(LATE_EXIT),
            },
        };
        let depth = u16::try_from(depth).unwrap_or(LATE_EXIT);
        self.push_event(Event { t, site, kind, after_loss: false, depth });
    }

    /// Stores an edge, marked if spans were dropped before it (here or in the thread's ring).
    fn push_event(&mut self, mut event: Event) {
        event.after_loss |= std::mem::take(&mut self.lost);
        self.events.push(event);
    }

    /// Stores an edge read from the thread's ring if the log has room for it (`room` more
    /// events at most); false if it was dropped (and counted).
    ///
    /// A full log drops at span granularity too: an enter is kept only with room for its exit
    /// and those of every span open around it; a dropped enter takes its exit and what it
    /// encloses along.
    pub(crate) fn store(&mut self, room: usize, event: Event) -> bool {
        let depth = event.depth;
        let at_depth = self.open_at.len().min(usize::from(depth));
        match event.kind {
            EventKind::Exit if event.is_late() => {
                if room < self.open_at.len() + 1 {
                    self.dropped += 1;
                    return false;
                }
            }
            EventKind::Exit => {
                if let Some(skip) = self.skip_from {
                    if depth >= skip {
                        if depth == skip {
                            self.skip_from = None;
                        }
                        self.dropped += 1;
                        return false;
                    }
                    self.skip_from = None;
                }
                self.open_at.truncate(at_depth);
            }
            EventKind::Cut => {
                // A cut is no span edge: one the log has no room for is not counted as
                // dropped (the next enter at its depth ends the same spans).
                if self.skip_from.is_some_and(|skip| depth > skip) || room < at_depth + 1 {
                    return false;
                }
                self.skip_from = None;
                self.open_at.truncate(at_depth);
            }
            EventKind::Enter => {
                if let Some(skip) = self.skip_from {
                    if depth > skip {
                        self.dropped += 1;
                        return false;
                    }
                    // The span being dropped was cut off (its guard forgotten).
                    self.skip_from = None;
                }
                self.open_at.truncate(at_depth);
                if room < self.open_at.len() + 2 {
                    self.skip_from = Some(depth);
                    self.dropped += 1;
                    self.lost = true;
                    return false;
                }
                self.open_at.push(self.events.len());
            }
        }
        self.push_event(event);
        true
    }

    /// Stores operations declared in the span open at `depth`, read from the thread's ring;
    /// false if they were not kept: the span was dropped (its operations go with it), or the
    /// log is full (counted as dropped, and the span flagged as having lost something).
    pub(crate) fn store_ops(&mut self, room: usize, depth: u16, ops: u64) -> bool {
        let Some(&at) = self.open_at.get(usize::from(depth)) else { return false };
        if room < self.open_at.len() + 1 {
            self.dropped += 1;
            self.lost = true;
            return false;
        }
        self.ops.push((at, ops));
        true
    }

    /// Removes the edges at `gone` (sorted positions). A loss marked on a removed edge for
    /// which `carries` holds moves to the next edge kept; each forgotten span keeps its place.
    /// Returns how many operation counts went with their spans.
    fn remove(&mut self, gone: &[usize], carries: impl Fn(usize) -> bool) -> usize {
        let mut gone_iter = gone.iter().copied().peekable();
        let mut kept = Vec::with_capacity(self.events.len() - gone.len());
        let mut carry_loss = false;
        let mut new_at = Vec::with_capacity(self.events.len() + 1);
        for (i, ev) in self.events.iter().enumerate() {
            new_at.push(kept.len());
            if gone_iter.next_if_eq(&i).is_some() {
                carry_loss |= ev.after_loss && carries(i);
                continue;
            }
            let mut ev = *ev;
            ev.after_loss |= std::mem::take(&mut carry_loss);
            kept.push(ev);
        }
        new_at.push(kept.len());
        self.lost |= carry_loss;
        for (at, _) in &mut self.forgotten {
            *at = new_at[(*at).min(new_at.len() - 1)];
        }
        // Operations of a span taken out go with it.
        let ops = self.ops.len();
        self.ops.retain(|&(at, _)| gone.binary_search(&at).is_err());
        for (at, _) in &mut self.ops {
            *at = new_at[*at];
        }
        // Open spans' places move too: operations declared later find their enter.
        for at in &mut self.open_at {
            *at = new_at[(*at).min(new_at.len() - 1)];
        }
        for (_, at) in &mut self.built {
            *at = new_at[(*at).min(new_at.len() - 1)];
        }
        self.events = kept;
        ops - self.ops.len()
    }

    /// See [`SpanLog::leave_out_forgotten`]; returns how many entries (enters, and operation
    /// counts of the spans left out) went.
    fn leave_out_forgotten(&mut self) -> usize {
        // Enters open now (one per depth), and enters cut off awaiting a late exit.
        // (site, depth, position): the depth is the index in `open`.
        let mut open: Vec<(SiteId, u16, usize)> = Vec::new();
        let mut cut: Vec<(SiteId, u16, usize)> = Vec::new();
        for (i, ev) in self.events.iter().enumerate() {
            match ev.ends_from(&open, |&(site, _, _)| site) {
                Some(at) => {
                    let from = if ev.kind == EventKind::Exit { at + 1 } else { at };
                    cut.extend(open.drain(from.min(open.len())..));
                    open.truncate(at);
                    if ev.kind == EventKind::Enter {
                        open.push((ev.site, ev.depth, i));
                    }
                }
                // A late exit: its span ran; the guard was dropped after an enclosing one's.
                // It is the latest span cut off at its site and depth.
                None => {
                    let level = ev.depth & !LATE;
                    let known = ev.depth != LATE_EXIT;
                    if let Some(k) =
                        cut.iter().rposition(|&(site, d, _)| site == ev.site && (!known || d == level))
                    {
                        cut.remove(k);
                    }
                }
            }
        }
        if self.ended {
            cut.extend(open);
        }
        if cut.is_empty() {
            return 0;
        }
        cut.sort_unstable_by_key(|&(_, _, i)| i);
        let gone: Vec<usize> = cut.iter().map(|&(_, _, i)| i).collect();
        // Edges inside a span left out are one level shallower: renumber from the kept
        // enters' old depths.
        let mut kept_open: Vec<u16> = Vec::new();
        let mut next_gone = gone.iter().peekable();
        for (i, ev) in self.events.iter_mut().enumerate() {
            let old = ev.depth;
            if next_gone.next_if(|&&g| g == i).is_some() {
                kept_open.retain(|&d| d < old);
                continue;
            }
            match ev.kind {
                EventKind::Enter => {
                    kept_open.retain(|&d| d < old);
                    ev.depth = kept_open.len() as u16;
                    kept_open.push(old);
                }
                EventKind::Cut => {
                    kept_open.retain(|&d| d < old);
                    ev.depth = kept_open.len() as u16;
                }
                // A late exit's level follows its span's (so that a second pass pairs them).
                EventKind::Exit if old == LATE_EXIT => {}
                EventKind::Exit if old & LATE != 0 => {
                    ev.depth = LATE | kept_open.partition_point(|&d| d < old & !LATE) as u16;
                }
                EventKind::Exit => match kept_open.binary_search(&old) {
                    Ok(at) => {
                        kept_open.truncate(at);
                        ev.depth = at as u16;
                    }
                    Err(_) => ev.depth = LATE_EXIT,
                },
            }
        }
        // Its place: the first edge after it (`remove` maps it so).
        self.forgotten.extend(cut.iter().map(|&(site, _, i)| (i, site)));
        let ops = self.remove(&gone, |_| true);
        self.forgotten.sort_by_key(|&(at, _)| at);
        cut.len() + ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::{Cut, Enter, Exit};

    fn log(events: &[(u64, SiteId, EventKind)]) -> SpanLog {
        let mut log = SpanLog::new();
        for &(t, site, kind) in events {
            log.push(0, Nanos(t), site, kind);
        }
        log
    }

    fn kept(log: &SpanLog) -> Vec<(u64, SiteId, EventKind)> {
        log.threads[0].events.iter().map(|e| (e.t.0, e.site, e.kind)).collect()
    }

    #[test]
    fn only_spans_whose_exit_never_comes_are_left_out() {
        let (a, b, c) = (SiteId(1), SiteId(2), SiteId(3));
        // a { b forgotten; c {} } ; then a guard dropped late: a { b } with b's exit after a's.
        let mut l = log(&[
            (0, a, Enter),
            (1, b, Enter),
            (2, c, Enter),
            (3, c, Exit),
            (4, a, Exit),
            (5, a, Enter),
            (6, b, Enter),
            (7, a, Exit),
            (8, b, Exit),
        ]);
        l.leave_out_forgotten();
        assert_eq!(
            kept(&l),
            [
                (0, a, Enter),
                (2, c, Enter),
                (3, c, Exit),
                (4, a, Exit),
                (5, a, Enter),
                (6, b, Enter),
                (7, a, Exit),
                (8, b, Exit)
            ]
        );
        assert_eq!(l.threads[0].forgotten, [(1, b)]);
        assert_eq!(l.len(), 8);
    }

    #[test]
    fn open_spans_are_forgotten_only_on_ended_threads() {
        let (a, b) = (SiteId(1), SiteId(2));
        let events = [(0, a, Enter), (1, b, Enter), (2, b, Exit)];
        let mut live = log(&events);
        live.leave_out_forgotten();
        assert_eq!(kept(&live).len(), 3, "a live thread's open span may still be running");
        let mut ended = log(&events);
        ended.threads[0].ended = true;
        ended.threads[0].events[0].after_loss = true;
        ended.leave_out_forgotten();
        assert_eq!(kept(&ended), [(1, b, Enter), (2, b, Exit)]);
        assert_eq!(ended.threads[0].forgotten, [(0, a)]);
        assert!(ended.threads[0].events[0].after_loss, "a loss marked on a left-out edge moves to the next");
    }

    #[test]
    fn a_window_loses_only_the_spans_wholly_inside_it() {
        let (a, b) = (SiteId(1), SiteId(2));
        // a opens before the window and ends inside it; b runs twice inside; b a third time
        // across the window's end.
        let mut l = log(&[
            (0, a, Enter),
            (10, b, Enter),
            (11, b, Exit),
            (12, a, Exit),
            (13, b, Enter),
            (14, b, Exit),
            (19, b, Enter),
            (30, b, Exit),
        ]);
        l.threads[0].events[4].after_loss = true;
        assert_eq!(l.discard_within(Nanos(5), Nanos(20)), 4);
        assert_eq!(kept(&l), [(0, a, Enter), (12, a, Exit), (19, b, Enter), (30, b, Exit)]);
        assert!(l.threads[0].events[2].after_loss, "a loss before a removed span stays with what was open");
        assert_eq!(l.len(), 4);
        // A span forgotten in each iteration ends at the harness's cut, or at the next enter
        // at its depth: each run is whole, and goes.
        let (x, l, none) = (a, b, SiteId(0));
        let mut cut = raw(&[
            (10, x, Enter, 0),
            (11, l, Enter, 1),
            (12, l, Exit, 1),
            (13, none, Cut, 0),
            (14, x, Enter, 0),
            (15, l, Enter, 1),
            (16, l, Exit, 1),
            (17, x, Enter, 0),
            (30, l, Enter, 1),
        ]);
        assert_eq!(cut.discard_within(Nanos(0), Nanos(20)), 7);
        assert_eq!(cut.threads[0].events.len(), 2, "the last x is open past the window");
        // Edges that do not nest (an exit ending more than the innermost span) are all kept.
        let mut tangled = log(&[(10, a, Enter), (11, b, Enter), (12, a, Exit), (13, b, Exit)]);
        assert_eq!(tangled.discard_within(Nanos(0), Nanos(20)), 0);
        assert_eq!(kept(&tangled).len(), 4);
    }

    fn depths(log: &SpanLog) -> Vec<u16> {
        log.threads[0].events.iter().map(|e| e.depth).collect()
    }

    #[test]
    fn in_a_recursion_each_exit_closes_the_span_at_its_depth() {
        let f = SiteId(1);
        // f { f (forgotten) { f } }: the outer exit, at depth 0, ends the outer f.
        let mut l =
            raw(&[(0, f, Enter, 0), (1, f, Enter, 1), (2, f, Enter, 2), (3, f, Exit, 2), (4, f, Exit, 0)]);
        l.leave_out_forgotten();
        assert_eq!(kept(&l), [(0, f, Enter), (2, f, Enter), (3, f, Exit), (4, f, Exit)]);
        assert_eq!(depths(&l), [0, 1, 1, 0], "the span inside the one left out is one level up");
        assert_eq!(l.threads[0].forgotten, [(1, f)]);
    }

    /// Events as a ring gives them, depths and all.
    fn raw(events: &[(u64, SiteId, EventKind, u16)]) -> SpanLog {
        let mut log = SpanLog::new();
        let thread = log.thread_mut(0, None);
        for &(t, site, kind, depth) in events {
            assert!(thread.store(usize::MAX, Event { t: Nanos(t), site, kind, after_loss: false, depth }));
        }
        log.len = events.len();
        log
    }

    #[test]
    fn a_cut_or_a_shallower_enter_ends_the_spans_above_it() {
        let (x, l, none) = (SiteId(1), SiteId(2), SiteId(0));
        // Each iteration forgets x, then runs l in it; the harness cuts after the first, and
        // the second's enter at depth 0 tells on its own.
        let mut log = raw(&[
            (0, x, Enter, 0),
            (1, l, Enter, 1),
            (2, l, Exit, 1),
            (3, none, Cut, 0),
            (4, x, Enter, 0),
            (5, l, Enter, 1),
            (6, l, Exit, 1),
            (7, x, Enter, 0),
        ]);
        log.threads[0].ended = true;
        log.leave_out_forgotten();
        assert_eq!(kept(&log), [(1, l, Enter), (2, l, Exit), (3, none, Cut), (5, l, Enter), (6, l, Exit)]);
        assert_eq!(depths(&log), [0, 0, 0, 0, 0]);
        assert_eq!(log.threads[0].forgotten, [(0, x), (3, x), (5, x)]);
        // A guard found open and dropped later exits late: its span ran, and stays.
        let mut late = raw(&[(0, x, Enter, 0), (1, none, Cut, 0), (2, x, Exit, LATE_EXIT)]);
        late.leave_out_forgotten();
        assert_eq!(kept(&late).len(), 3);
        assert!(late.threads[0].forgotten.is_empty());
    }

    #[test]
    fn a_full_log_drops_whole_spans_by_depth() {
        let (a, b, c) = (SiteId(1), SiteId(2), SiteId(3));
        let mut t = ThreadEvents::default();
        let ev = |site, kind, depth| Event { t: Nanos(0), site, kind, after_loss: false, depth };
        assert!(t.store(2, ev(a, Enter, 0)));
        // Room for b but not for its exit and a's: b, and c inside it, are dropped.
        assert!(!t.store(2, ev(b, Enter, 1)));
        assert!(!t.store(9, ev(c, Enter, 2)));
        assert!(!t.store(9, ev(c, Exit, 2)));
        assert!(!t.store(9, ev(b, Exit, 1)));
        assert!(t.store(9, ev(c, Enter, 1)), "recording resumes after the dropped span's exit");
        assert!(t.store(9, ev(c, Exit, 1)));
        assert!(!t.store(1, ev(b, Enter, 1)));
        // b's guard forgotten: a's exit ends the dropping too.
        assert!(t.store(9, ev(a, Exit, 0)));
        assert!(t.store(9, ev(c, Enter, 0)));
        assert_eq!(t.dropped, 5);
        assert!(t.events[1].after_loss, "the edge after a drop is marked");
    }

    #[test]
    fn operations_stay_with_their_span() {
        let (a, b) = (SiteId(1), SiteId(2));
        let mut t = ThreadEvents::default();
        let ev = |site, kind, depth| Event { t: Nanos(0), site, kind, after_loss: false, depth };
        assert!(t.store(9, ev(a, Enter, 0)));
        assert!(t.store(9, ev(b, Enter, 1)));
        assert!(t.store_ops(9, 1, 7), "b's");
        assert!(t.store_ops(9, 0, 5), "a's, declared while b runs");
        assert!(!t.store_ops(9, 2, 3), "no span open at depth 2");
        assert!(!t.store_ops(2, 1, 3), "no room: dropped, and said");
        assert_eq!((t.dropped, t.lost), (1, true));
        assert!(t.store(9, ev(b, Exit, 1)));
        assert_eq!(t.ops, [(1, 7), (0, 5)]);
        // A span taken out takes its operations along; the others follow their span.
        t.remove(&[1, 2], |_| false);
        assert_eq!(t.ops, [(0, 5)]);
        let mut l = log(&[(0, a, Enter), (1, b, Enter), (2, b, Exit), (3, a, Exit), (4, b, Enter)]);
        assert!(l.add_ops(0, 11));
        l.push(0, Nanos(5), b, Exit);
        assert!(!l.add_ops(0, 1), "no span open");
        assert_eq!(l.discard_within(Nanos(0), Nanos(3)), 4);
        assert_eq!(l.threads[0].ops, [(0, 11)], "the second b's, now first");
        // A span open across a discarded window keeps its place for the counts still to come.
        let mut live =
            raw(&[(0, a, Enter, 0), (1, a, Exit, 0), (2, a, Enter, 0), (3, a, Exit, 0), (4, b, Enter, 0)]);
        assert_eq!(live.discard_within(Nanos(0), Nanos(3)), 4);
        assert!(live.threads[0].store_ops(9, 0, 42));
        assert_eq!(live.threads[0].ops, [(0, 42)], "b's enter is now first");
    }

    #[test]
    fn shares_of_the_room_leave_each_part_its_own() {
        let mut l = SpanLog::new();
        let first = l.share_room(4);
        assert_eq!(first, MAX_EVENTS / 4);
        assert_eq!(l.room(), first);
        l.note_stored(first);
        assert_eq!(l.room(), 0, "a part cannot take more than its share");
        assert_eq!(l.share_room(3), (MAX_EVENTS - first) / 3);
    }
}
