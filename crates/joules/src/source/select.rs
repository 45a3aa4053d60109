//! Choosing which sources and domains to read: `--source` / `--domain` on every subcommand,
//! `JOULES_SOURCES` / `JOULES_DOMAINS` for any program.
//!
//! With no choice, the probe reads what it trusts most (see [`super::Probe`]). A choice of
//! sources reads only those (the estimate too, when named, even beside counters); a choice of
//! domains keeps, of every source, only the domains named. A name that matches nothing is an
//! error, never an empty profile.

use super::{Domain, Excluded, ReadCtx, ReadError, Source, SourceKind};
use crate::units::{Joules, Nanos};

/// Names the sources to read: `perf,powercap,msr,nvml,hwmon,estimate` (any of them).
pub const SOURCES_ENV: &str = "JOULES_SOURCES";
/// Names the domains to read, by id (`package-0`, `gpu:0`, `cpu`); a trailing `*` matches
/// any id with that start (`package-*`).
pub const DOMAINS_ENV: &str = "JOULES_DOMAINS";

/// The source names a selection accepts, in order of trust.
pub const SOURCE_NAMES: [&str; 6] = ["perf", "powercap", "msr", "nvml", "hwmon", "estimate"];

/// Which sources and domains to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Source names (None: the probe chooses).
    pub sources: Option<Vec<String>>,
    /// Domain patterns (None: every domain of the sources read).
    pub domains: Option<Vec<String>>,
}

impl Selection {
    /// From [`SOURCES_ENV`] and [`DOMAINS_ENV`]; unset or empty variables choose nothing.
    pub fn from_env() -> Result<Self, String> {
        let list = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        Self::parse(list(SOURCES_ENV).as_deref(), list(DOMAINS_ENV).as_deref())
            .map_err(|e| format!("{e} (from {SOURCES_ENV} / {DOMAINS_ENV})"))
    }

    /// From comma-separated lists of sources and domains.
    pub fn parse(sources: Option<&str>, domains: Option<&str>) -> Result<Self, String> {
        let split = |s: &str| -> Vec<String> {
            s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
        };
        // An empty list (an empty variable) chooses nothing, as if unset.
        let sources = sources.map(split).filter(|v| !v.is_empty());
        let domains = domains.map(split).filter(|v| !v.is_empty());
        if let Some(names) = &sources
            && let Some(bad) = names.iter().find(|n| !SOURCE_NAMES.contains(&n.as_str()))
        {
            return Err(format!("unknown source {bad:?}: choose among {}", SOURCE_NAMES.join(", ")));
        }
        Ok(Selection { sources, domains })
    }

    /// True if nothing is chosen.
    pub fn is_empty(&self) -> bool {
        self.sources.is_none() && self.domains.is_none()
    }

    /// The environment that makes another program (a bench binary) choose the same.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(s) = &self.sources {
            env.push((SOURCES_ENV, s.join(",")));
        }
        if let Some(d) = &self.domains {
            env.push((DOMAINS_ENV, d.join(",")));
        }
        env
    }

    /// Whether source `kind` may be read. Power integration (NVML's, hwmon's) is chosen by
    /// its source's name, `nvml` or `hwmon`.
    pub fn allows(&self, kind: SourceKind) -> bool {
        let name = match kind {
            SourceKind::NvmlPower => "nvml",
            SourceKind::HwmonPower => "hwmon",
            other => other.name(),
        };
        self.sources.as_ref().is_none_or(|s| s.iter().any(|n| n == name))
    }

    /// Whether the estimate was named: then it is read even beside energy counters.
    pub fn names_estimate(&self) -> bool {
        self.sources.as_ref().is_some_and(|s| s.iter().any(|n| n == "estimate"))
    }

    /// Whether domain `id` is chosen.
    pub fn keeps(&self, id: &str) -> bool {
        self.domains.as_ref().is_none_or(|d| d.iter().any(|p| matches(p, id)))
    }

    /// The domain patterns that match none of `ids`.
    pub fn unmatched<'a>(&'a self, ids: &[&str]) -> Vec<&'a str> {
        let Some(patterns) = &self.domains else { return Vec::new() };
        patterns.iter().filter(|p| !ids.iter().any(|id| matches(p, id))).map(String::as_str).collect()
    }
}

fn matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

/// A source with only some of its domains: the rest are read (the hardware gives them
/// together) but never reported.
pub(crate) struct Only {
    inner: Box<dyn Source>,
    /// Indexes of the kept domains in the inner source.
    keep: Vec<usize>,
    domains: Vec<Domain>,
    excluded: Vec<Excluded>,
    scratch: Vec<Joules>,
}

impl Only {
    /// `inner` with only the domains `selection` keeps; None if it keeps none.
    pub(crate) fn wrap(inner: Box<dyn Source>, selection: &Selection) -> Option<Box<dyn Source>> {
        let all = inner.domains();
        let keep: Vec<usize> = (0..all.len()).filter(|&i| selection.keeps(&all[i].id)).collect();
        if keep.is_empty() {
            return None;
        }
        if keep.len() == all.len() {
            return Some(inner);
        }
        let domains = keep
            .iter()
            .map(|&i| {
                let mut d = all[i].clone();
                // Part of a domain not read: nothing above it is summed, so it counts alone.
                if d.part_of.as_deref().is_some_and(|p| !selection.keeps(p)) {
                    d.part_of = None;
                }
                d
            })
            .collect();
        let mut excluded = inner.excluded().to_vec();
        for (i, d) in all.iter().enumerate() {
            if !keep.contains(&i) {
                excluded.push(Excluded {
                    domain: d.id.clone(),
                    why: "not selected (--domain / JOULES_DOMAINS)".into(),
                });
            }
        }
        let scratch = vec![Joules(0.0); all.len()];
        Some(Box::new(Only { inner, keep, domains, excluded, scratch }))
    }
}

impl Source for Only {
    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn modelled(&self) -> bool {
        self.inner.modelled()
    }
    fn domains(&self) -> &[Domain] {
        &self.domains
    }
    fn excluded(&self) -> &[Excluded] {
        &self.excluded
    }
    fn set_update_period(&mut self, index: usize, period: Nanos) {
        if let Some(&i) = self.keep.get(index) {
            self.inner.set_update_period(i, period);
            self.domains[index].update_period = period;
            self.domains[index].update_period_measured = true;
        }
    }
    fn min_interval(&self) -> Nanos {
        self.inner.min_interval()
    }
    fn latches_at_start(&self) -> bool {
        self.inner.latches_at_start()
    }
    fn longest_gap(&self) -> Nanos {
        self.inner.longest_gap()
    }
    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        let result = self.inner.read(ctx, &mut self.scratch);
        for (o, &i) in out.iter_mut().zip(&self.keep) {
            *o = self.scratch[i];
        }
        match result {
            // Only the kept domains' losses matter, at their new indexes.
            Err(ReadError::Lost { lost }) => {
                let lost: Vec<(usize, String)> = lost
                    .into_iter()
                    .filter_map(|(d, why)| self.keep.iter().position(|&k| k == d).map(|p| (p, why)))
                    .collect();
                if lost.is_empty() { Ok(()) } else { Err(ReadError::Lost { lost }) }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let s = Selection::parse(Some("powercap, estimate"), Some("package-*,gpu:0")).unwrap();
        assert!(s.allows(SourceKind::Powercap) && s.allows(SourceKind::Estimate));
        assert!(!s.allows(SourceKind::Msr) && !s.allows(SourceKind::Nvml));
        assert!(s.names_estimate());
        assert!(s.keeps("package-0") && s.keeps("package-1/core") && s.keeps("gpu:0"));
        assert!(!s.keeps("gpu:1") && !s.keeps("dram"));
        assert_eq!(s.unmatched(&["package-0"]), ["gpu:0"]);
        assert!(Selection::parse(Some("rapl"), None).unwrap_err().contains("unknown source \"rapl\""));
        assert!(Selection::parse(None, None).unwrap().is_empty());
        assert!(Selection::parse(Some(" "), Some(",")).unwrap().is_empty(), "empty lists choose nothing");
        let nvml = Selection::parse(Some("nvml"), None).unwrap();
        assert!(nvml.allows(SourceKind::NvmlPower) && !nvml.names_estimate());
    }
}
