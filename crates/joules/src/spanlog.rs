//! The spans of a profile, as time-stamped enter/exit events per thread.

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
}

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
    /// Recorded spans not yet left (the log keeps room for their exits).
    pub(crate) open: usize,
    /// Spans being dropped whole because the log was full.
    pub(crate) skipping: usize,
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
        self.cap = None;
        let share = self.room() / parts.max(1);
        self.cap = Some(self.len + share);
        share
    }

    /// Removes every span that began and ended within `[from, until]` (e.g. a warm-up, whose
    /// spans no figure uses), freeing its room; returns how many edges went. A thread whose
    /// edges there do not nest cleanly (a lost, late or forgotten exit) keeps them all.
    pub(crate) fn discard_within(&mut self, from: Nanos, until: Nanos) -> usize {
        let mut removed = 0;
        for thread in &mut self.threads {
            let lo = thread.events.partition_point(|e| e.t < from);
            let hi = thread.events.partition_point(|e| e.t <= until);
            // Positions in the window of complete spans' outermost enter and exit.
            let (mut depth, mut runs, mut run_from) = (Vec::new(), Vec::new(), 0);
            let mut clean = true;
            for (i, ev) in thread.events[lo..hi].iter().enumerate() {
                match ev.kind {
                    EventKind::Enter => {
                        if depth.is_empty() {
                            run_from = i;
                        }
                        depth.push(ev.site);
                    }
                    EventKind::Exit if depth.last() == Some(&ev.site) => {
                        depth.pop();
                        if depth.is_empty() {
                            runs.push(lo + run_from..lo + i + 1);
                        }
                    }
                    // An exit of a span open before the window: what follows is outside it.
                    EventKind::Exit if depth.is_empty() => {}
                    EventKind::Exit => clean = false,
                }
            }
            if !clean || runs.is_empty() {
                continue;
            }
            let n: usize = runs.iter().map(|r| r.len()).sum();
            let mut kept = Vec::with_capacity(thread.events.len() - n);
            let mut carry_loss = false;
            let mut next = runs.iter().peekable();
            for (i, ev) in thread.events.iter().enumerate() {
                while next.next_if(|r| r.end <= i).is_some() {}
                if let Some(r) = next.peek().filter(|r| r.contains(&i)) {
                    // Spans lost before a removed span's enter were lost in what was open
                    // around it, which stays; those lost inside it went with it.
                    carry_loss |= ev.after_loss && i == r.start;
                    continue;
                }
                let mut ev = *ev;
                ev.after_loss |= std::mem::take(&mut carry_loss);
                kept.push(ev);
            }
            thread.lost |= carry_loss;
            thread.events = kept;
            removed += n;
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
    pub(crate) fn push(&mut self, t: Nanos, site: u32, kind: EventKind) {
        self.push_after(t, site, kind, false);
    }

    /// Stores an edge, marked if spans were dropped before it (here or in the thread's ring).
    pub(crate) fn push_after(&mut self, t: Nanos, site: u32, kind: EventKind, after_loss: bool) {
        let after_loss = after_loss || std::mem::take(&mut self.lost);
        self.events.push(Event { t, site: SiteId(site), kind, after_loss });
    }

    /// See [`SpanLog::leave_out_forgotten`]; returns how many enters it left out.
    fn leave_out_forgotten(&mut self) -> usize {
        // Positions of enters: open now, and ended by an enclosing exit awaiting their own.
        let mut stack: Vec<(SiteId, usize)> = Vec::new();
        let mut unwound: Vec<(SiteId, usize)> = Vec::new();
        for (i, ev) in self.events.iter().enumerate() {
            match ev.kind {
                EventKind::Enter => stack.push((ev.site, i)),
                EventKind::Exit => match stack.iter().rposition(|&(site, _)| site == ev.site) {
                    Some(at) => unwound.extend(stack.drain(at..).skip(1)),
                    // The late exit of a guard dropped after its enclosing one's.
                    None => {
                        if let Some(k) = unwound.iter().rposition(|&(site, _)| site == ev.site) {
                            unwound.remove(k);
                        }
                    }
                },
            }
        }
        if self.ended {
            unwound.extend(stack);
        }
        if unwound.is_empty() {
            return 0;
        }
        unwound.sort_unstable_by_key(|&(_, i)| i);
        let mut gone = unwound.iter().peekable();
        let mut kept = Vec::with_capacity(self.events.len() - unwound.len());
        let mut carry_loss = false;
        for (i, ev) in self.events.iter().enumerate() {
            if let Some(&(site, _)) = gone.next_if(|&&(_, at)| at == i) {
                self.forgotten.push((kept.len(), site));
                carry_loss |= ev.after_loss;
                continue;
            }
            let mut ev = *ev;
            ev.after_loss |= std::mem::take(&mut carry_loss);
            kept.push(ev);
        }
        self.events = kept;
        unwound.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::{Enter, Exit};

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
        // Edges that do not nest (an exit ending more than the innermost span) are all kept.
        let mut tangled = log(&[(10, a, Enter), (11, b, Enter), (12, a, Exit), (13, b, Exit)]);
        assert_eq!(tangled.discard_within(Nanos(0), Nanos(20)), 0);
        assert_eq!(kept(&tangled).len(), 4);
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
