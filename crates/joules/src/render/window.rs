//! A window's (or a whole command's) joules per domain, for the terminal.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

use super::Scale;
use crate::window::WindowEnergy;

/// One row per domain: joules with their bounds, mean power, and where each came from.
pub fn window_table(energy: &WindowEnergy) -> String {
    let secs = energy.duration().as_secs_f64();
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec!["domain", "energy", "bounds", "mean power", "source"]);
    for d in &energy.domains {
        let name = match &d.part_of {
            Some(parent) => format!("{} (in {parent})", d.domain),
            None => d.domain.clone(),
        };
        match d.energy {
            Some(e) => {
                let power = if secs > 0.0 {
                    let w = e.point.0 / secs;
                    Scale::watts(e.hi.0 / secs).format(w)
                } else {
                    "-".into()
                };
                // Scaled by the upper bound: a point of 0 J still gets the unit its bounds need.
                let unit = Scale::energy(e.hi.0);
                let mut source = d.provenance.clone();
                if d.shorter_than_step {
                    source.push_str("; shorter than one counter step");
                }
                table.add_row(vec![
                    Cell::new(name),
                    Cell::new(unit.format(e.point.0)).set_alignment(CellAlignment::Right),
                    Cell::new(format!("{} – {}", unit.format(e.lo.0), unit.format(e.hi.0))),
                    Cell::new(power).set_alignment(CellAlignment::Right),
                    Cell::new(source),
                ]);
            }
            None => {
                table.add_row(vec![
                    Cell::new(name),
                    Cell::new("-"),
                    Cell::new("-"),
                    Cell::new("-"),
                    Cell::new(format!("no figure: {}", d.missing.as_deref().unwrap_or("not read"))),
                ]);
            }
        }
    }
    format!(
        "{}: {:.3} s, joules per domain; bounds hold whatever the power did between readings\n{table}\n",
        energy.label, secs
    )
}
