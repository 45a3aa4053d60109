//! The spans of a profile, as time-stamped enter/exit events per thread.

use crate::units::Nanos;

/// Spans beyond this many events are counted as dropped rather than stored (16 bytes each):
/// a runaway span in a tight loop must not exhaust memory.
pub const MAX_EVENTS: usize = 1 << 24;

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
        MAX_EVENTS.saturating_sub(self.len)
    }

    pub(crate) fn note_stored(&mut self, n: usize) {
        self.len += n;
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
}
