//! `cargo joules doctor`: which energy sources this machine offers, which one joules reads,
//! and for each one it cannot read, why and the exact fix.

use std::fmt::Write;

use comfy_table::{Cell, ContentArrangement, Table, presets};
use serde::{Deserialize, Serialize};

use crate::render::Scale;
use crate::source::hwmon::HwmonDevice;
use crate::source::{Outcome, Probe, ProbeStatus, SourceKind};

/// The diagnosis, as `doctor --format json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Doctor {
    /// Every source probed, in order of trust.
    pub sources: Vec<Outcome>,
    /// Every hwmon device: what it offers, what is read, and why not the rest.
    #[serde(default)]
    pub hwmon: Vec<HwmonDevice>,
    /// The sources read.
    pub in_use: Vec<SourceKind>,
    /// Whether at least one real energy counter is read.
    pub measured: bool,
    /// One sentence for humans.
    pub summary: String,
}

impl Doctor {
    /// Diagnoses from a probe's outcomes.
    pub fn from_probe(probe: &Probe) -> Self {
        let in_use: Vec<SourceKind> =
            probe.outcomes.iter().filter(|o| o.status == ProbeStatus::InUse).map(|o| o.kind).collect();
        let measured = in_use.iter().any(|k| k.is_measured());
        let names = |keep: &dyn Fn(SourceKind) -> bool| {
            in_use.iter().filter(|k| keep(**k)).map(|k| k.name()).collect::<Vec<_>>().join(" + ")
        };
        let mut parts = Vec::new();
        let counted = names(&|k| k.is_measured());
        if !counted.is_empty() {
            parts.push(format!("energy is measured by {counted}"));
        }
        if in_use.contains(&SourceKind::HwmonPower) {
            parts.push("some hwmon sensors give power, not energy: their readings are integrated (labelled \"integrated\")".to_owned());
        }
        if in_use.contains(&SourceKind::NvmlPower) {
            parts.push("some GPUs have no energy counter: their power readings are integrated (labelled \"integrated\")".to_owned());
        }
        if in_use.contains(&SourceKind::Estimate) {
            parts.push(
                "no CPU energy counter can be read here, so CPU figures are estimated from CPU time \
                 (labelled \"estimated\"); see the reasons and fixes above"
                    .to_owned(),
            );
        }
        let deselected = probe.outcomes.iter().any(|o| o.status == ProbeStatus::NotSelected);
        let summary = if parts.is_empty() && deselected {
            "none of the sources selected (--source / --domain, JOULES_SOURCES / JOULES_DOMAINS) can be read here"
                .to_owned()
        } else if parts.is_empty() {
            "no energy source can be opened, not even the estimate".to_owned()
        } else {
            parts.join("; ")
        };
        Doctor { sources: probe.outcomes.clone(), hwmon: probe.hwmon.clone(), in_use, measured, summary }
    }

    /// The table, then each unavailable source's reason and fix, then the summary.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(["source", "status", "domains", "resolution", "update period"]);
        for o in &self.sources {
            let status = match &o.status {
                ProbeStatus::InUse => "in use".to_owned(),
                ProbeStatus::Superseded { by } => format!("superseded by {}", by.name()),
                ProbeStatus::Standby => "standby".to_owned(),
                ProbeStatus::NotSelected => "not selected".to_owned(),
                ProbeStatus::Unavailable { .. } => "unavailable".to_owned(),
            };
            let mut domains = Vec::new();
            let mut resolutions = Vec::new();
            let mut periods = Vec::new();
            for d in &o.domains {
                domains.push(match &d.part_of {
                    Some(p) => format!("{} (part of {p})", d.id),
                    None => d.id.clone(),
                });
                resolutions.push(Scale::energy(d.resolution.0).format(d.resolution.0));
                periods.push(match (d.update_period.0, d.update_period_measured) {
                    (0, _) => "continuous".to_owned(),
                    (p, true) => format!("{} measured", Scale::time(p as f64).format(p as f64)),
                    (p, false) => format!("{} nominal", Scale::time(p as f64).format(p as f64)),
                });
            }
            for x in &o.excluded {
                domains.push(format!("{} (not read)", x.domain));
                resolutions.push(String::new());
                periods.push(String::new());
            }
            table.add_row([
                Cell::new(o.kind.name()),
                Cell::new(status),
                Cell::new(domains.join("\n")),
                Cell::new(resolutions.join("\n")),
                Cell::new(periods.join("\n")),
            ]);
        }
        let mut out = format!("{table}\n");
        for o in &self.sources {
            if let ProbeStatus::Unavailable { reason, fix } = &o.status {
                let _ = writeln!(out, "{}: {reason}", o.kind.name());
                if let Some(fix) = fix {
                    let _ = writeln!(out, "  fix: {fix}");
                }
            }
            for x in &o.excluded {
                let _ = writeln!(out, "{}: {} not read: {}", o.kind.name(), x.domain, x.why);
            }
            if let Some(desc) = &o.description
                && o.status == ProbeStatus::InUse
            {
                let _ = writeln!(out, "{}: {desc}", o.kind.name());
            }
        }
        if !self.hwmon.is_empty() {
            let _ = writeln!(out, "\nhwmon devices:");
            for d in &self.hwmon {
                let what = d.what.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
                if d.offers.is_empty() && d.read.is_empty() {
                    let _ = writeln!(out, "  {} {}{what}: no energy or power channel", d.hwmon, d.driver);
                    continue;
                }
                let _ = writeln!(out, "  {} {}{what}: offers {}", d.hwmon, d.driver, d.offers.join(", "));
                for r in &d.read {
                    let _ = writeln!(out, "    reads {r}");
                }
                for n in &d.not_read {
                    let _ = writeln!(out, "    not read: {n}");
                }
            }
        }
        let _ = writeln!(out, "\n{}", self.summary);
        out
    }
}
