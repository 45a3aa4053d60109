//! The energy label for people: an SVG in the manner of the EU appliance label, and the same
//! facts for a terminal. Every line of the SVG is a `<text>` element, so the label can be
//! read (and tested) as text.

use std::fmt::Write as _;

use crate::label::{Grade, Interval, Label};
use crate::render::{Scale, escape_xml as esc};

/// The EU label's class colours, A to G.
const COLOURS: [&str; 7] = ["#00a650", "#50b848", "#bed630", "#fff200", "#fdb913", "#f37021", "#ed1c24"];
/// ANSI 256-colour codes close to them.
const ANSI: [u8; 7] = [28, 70, 148, 226, 214, 202, 196];

/// `value (lo–hi) unit` for an interval.
fn interval(scale: Scale, i: &Interval) -> String {
    scale.bounds(i.point, i.lo, i.hi)
}

fn energy(i: &Interval) -> String {
    interval(Scale::energy(i.point), i)
}

/// The facts on a label, line by line, shared by the SVG and the terminal.
struct Facts {
    headline: String,
    interval: String,
    per_1000: String,
    carbon: Vec<String>,
    training: Option<String>,
    what_if: Vec<String>,
    provenance: Vec<String>,
}

fn grade_line(g: &Grade) -> String {
    let value = match g.scale.as_str() {
        "efficiency" => interval(Scale::ops_per_joule(g.value.point), &g.value),
        _ => format!(
            "{:.1} ({:.1}–{:.1})",
            g.value.point,
            g.value.lo.unwrap_or(f64::NAN),
            g.value.hi.unwrap_or(f64::NAN)
        ),
    };
    let level = 100.0 * g.value.level;
    let firm = if g.range.0 == g.range.1 {
        format!("firm within the {level:.0}% interval")
    } else {
        format!("{}–{} within the {level:.0}% interval", g.range.0, g.range.1)
    };
    format!("{} {}: {value}; {firm}", g.scale, g.grade)
}

fn facts(l: &Label) -> Facts {
    let g = &l.carbon.g_per_inference;
    let m = &l.carbon.g_per_million;
    let carbon = vec![
        format!(
            "{} CO2e per inference, {} per million",
            interval(Scale::grams(g.point), g),
            interval(Scale::grams(m.point), m)
        ),
        format!("at {} gCO2e/kWh ({})", l.carbon.grid.g_per_kwh, l.carbon.grid.source),
    ];
    let training = l.training.as_ref().map(|t| {
        let when = t.inferences.as_ref().map_or("unknown (no energy measured)".to_owned(), |i| {
            format!("{} inferences", interval(Scale::ops(i.point), i))
        });
        format!(
            "passes training ({}, {}) after {when}",
            Scale::energy(t.training_j).format(t.training_j),
            t.source
        )
    });
    let what_if = l
        .what_if
        .iter()
        .map(|p| {
            format!(
                "{}: {} at its peak {} TOPS/W (measured: {}x that)",
                p.device.name,
                Scale::energy(p.j_per_inference_at_peak).format(p.j_per_inference_at_peak),
                p.device.tops_per_w,
                Sig(p.measured_over_projected)
            )
        })
        .collect();
    let p = &l.provenance;
    let hash = p.report_sha256.get(..16).unwrap_or(&p.report_sha256);
    let mut provenance: Vec<String> = p.sources.iter().map(|s| format!("source {s}")).collect();
    provenance.push(format!("estimator: {}", p.estimator));
    provenance.push(format!("machine: {}", p.machine));
    provenance.push(format!("{} · {} · report sha256 {hash}", p.date, p.tool));
    Facts {
        headline: format!("{} per inference", energy(&l.j_per_inference)),
        interval: {
            let i = &l.j_per_inference;
            let scale = Scale::energy(i.point);
            let bare = |v: Option<f64>| v.map_or("?".to_owned(), |v| scale.format(v));
            format!("per inference · {:.0}% interval {} to {}", 100.0 * i.level, bare(i.lo), bare(i.hi))
        },
        per_1000: format!(
            "{} per 1000 inferences",
            interval(Scale::watt_hours(l.wh_per_1000.point), &l.wh_per_1000)
        ),
        carbon,
        training,
        what_if,
        provenance,
    }
}

/// A figure to 4 significant digits, without exponent for everyday sizes.
struct Sig(f64);

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() {
            return write!(f, "{v}");
        }
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        if v.abs() >= 1e7 { write!(f, "{v:.3e}") } else { write!(f, "{v:.digits$}") }
    }
}

/// Words of `s` in lines of at most `width` characters (a longer word gets its own line).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

const WIDTH: u32 = 520;

/// Draws one scale's A-G arrows at `x`, its grade marked; returns the height used.
fn scale_svg(out: &mut String, x: u32, y: u32, title: &str, grade: Option<&Grade>, missing: &str) -> u32 {
    let _ = writeln!(out, r#"<text x="{x}" y="{y}" class="h">{}</text>"#, esc(title));
    let top = y + 10;
    for (i, colour) in COLOURS.iter().enumerate() {
        let row = top + i as u32 * 26;
        let w = 60 + i as u32 * 14;
        let letter = char::from(b'A' + i as u8);
        let _ = writeln!(
            out,
            r#"<polygon points="{x},{row} {},{row} {},{} {},{} {x},{}" fill="{colour}"/>"#,
            x + w,
            x + w + 11,
            row + 11,
            x + w,
            row + 22,
            row + 22
        );
        let _ = writeln!(out, r#"<text x="{}" y="{}" class="band">{letter}</text>"#, x + 6, row + 17);
        if grade.is_some_and(|g| g.grade == letter) {
            let mx = x + 180;
            let _ = writeln!(
                out,
                r##"<polygon points="{},{} {mx},{} {},{} {},{} {mx},{}" fill="#111"/>"##,
                mx - 14,
                row + 11,
                row - 3,
                mx + 36,
                row - 3,
                mx + 36,
                row + 25,
                row + 25
            );
            let _ = writeln!(out, r#"<text x="{}" y="{}" class="grade">{letter}</text>"#, mx + 9, row + 20);
        }
    }
    let below = top + 7 * 26 + 14;
    match grade {
        Some(g) => {
            let _ = writeln!(out, r#"<text x="{x}" y="{below}" class="s">{}</text>"#, esc(&g.measure));
        }
        None => {
            let _ = writeln!(out, r#"<text x="{x}" y="{below}" class="s">{}</text>"#, esc(missing));
        }
    }
    below - y
}

/// The label as a self-contained SVG.
pub fn svg(l: &Label) -> String {
    let f = facts(l);
    let mut body = String::new();
    let mut y = 34;
    let text = |body: &mut String, y: u32, class: &str, s: &str| {
        let _ = writeln!(body, r#"<text x="16" y="{y}" class="{class}">{}</text>"#, esc(s));
    };
    // Long lines are wrapped: SVG text does not wrap itself.
    let wrapped = |body: &mut String, y: &mut u32, step: u32, class: &str, s: &str| {
        let width = if class == "xs" { 96 } else { 78 };
        for (i, line) in wrap(s, width).iter().enumerate() {
            if i > 0 {
                *y += step - 3;
            }
            text(body, *y, class, line);
        }
    };
    text(&mut body, y, "title", "ENERGY · joules");
    y += 24;
    text(&mut body, y, "m", &format!("benchmark {}", l.bench));
    if !l.provenance.measured {
        y += 40;
        text(&mut body, y, "estimated", "ESTIMATED — NOT MEASURED");
        y += 18;
        wrapped(&mut body, &mut y, 18, "s", &not_measured(l));
    }
    y += 40;
    let big = Scale::energy(l.j_per_inference.point).format(l.j_per_inference.point);
    text(&mut body, y, "big", &big);
    y += 20;
    text(&mut body, y, "m", &f.interval);
    y += 20;
    text(&mut body, y, "m", &f.per_1000);
    y += 36;
    let efficiency_missing = "efficiency: no operations declared";
    let index_missing = match &l.no_index {
        Some(why) if why.starts_with("no reference") => "index: no reference given",
        _ => "index: reference unusable (see warnings)",
    };
    let h1 = scale_svg(&mut body, 16, y, "efficiency · ops/J", l.efficiency.as_ref(), efficiency_missing);
    let h2 = scale_svg(&mut body, 270, y, "index · % of reference", l.index.as_ref(), index_missing);
    y += h1.max(h2) + 4;
    for g in [&l.efficiency, &l.index].into_iter().flatten() {
        y += 18;
        wrapped(&mut body, &mut y, 18, "s", &grade_line(g));
    }
    y += 28;
    text(&mut body, y, "h", "carbon");
    for line in &f.carbon {
        y += 18;
        wrapped(&mut body, &mut y, 18, "s", line);
    }
    if let Some(t) = &f.training {
        y += 28;
        text(&mut body, y, "h", "training");
        y += 18;
        wrapped(&mut body, &mut y, 18, "s", t);
    }
    // A heading, then its lines in small type.
    let section = |body: &mut String, y: &mut u32, title: &str, lines: &[String]| {
        *y += 28;
        text(body, *y, "h", title);
        for line in lines {
            *y += 16;
            wrapped(body, y, 16, "xs", line);
        }
    };
    if !f.what_if.is_empty() {
        section(&mut body, &mut y, "what if · projected at published peaks, not measured", &f.what_if);
        y += 16;
        text(&mut body, y, "xs", "systems reach a fraction of peak: real figures are higher");
    }
    if !l.warnings.is_empty() {
        section(&mut body, &mut y, "warnings", &l.warnings);
    }
    section(&mut body, &mut y, "provenance", &f.provenance);
    let height = y + 20;
    let border = if l.provenance.measured { "#1a1a1a" } else { "#ed1c24" };
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Verdana, sans-serif" class="joules-label" role="img" aria-label="joules energy label for {bench}">
<style>
.joules-label .title {{ font-size: 22px; font-weight: bold; }}
.joules-label .big {{ font-size: 26px; font-weight: bold; }}
.joules-label .h {{ font-size: 14px; font-weight: bold; }}
.joules-label .m {{ font-size: 14px; }}
.joules-label .s {{ font-size: 12px; }}
.joules-label .xs {{ font-size: 10px; fill: #333; }}
.joules-label .band {{ font-size: 16px; font-weight: bold; fill: #fff; }}
.joules-label .grade {{ font-size: 22px; font-weight: bold; fill: #fff; }}
.joules-label .estimated {{ font-size: 28px; font-weight: bold; fill: #ed1c24; }}
</style>
<rect x="2" y="2" width="{}" height="{}" fill="#fff" stroke="{border}" stroke-width="4" rx="8"/>
{body}</svg>
"##,
        WIDTH - 4,
        height - 4,
        bench = esc(&l.bench),
    )
}

/// Which figures are not measured, for the banner.
fn not_measured(l: &Label) -> String {
    if l.provenance.not_measured.len() == l.provenance.sources.len() {
        "no energy counter was read: these figures are a model's, not a meter's".to_owned()
    } else {
        format!(
            "{} estimated or simulated, not read from an energy counter; the rest measured",
            l.provenance.not_measured.join(", ")
        )
    }
}

/// The label for a terminal, in ANSI colour where `color`.
pub fn text(l: &Label, color: bool) -> String {
    let f = facts(l);
    let mut out = String::new();
    let _ = writeln!(out, "energy label · {}", l.bench);
    if !l.provenance.measured {
        let (on, off) = if color { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
        let _ = writeln!(out, "{on}ESTIMATED — NOT MEASURED: {}{off}", not_measured(l));
    }
    let _ = writeln!(out, "  {}", f.headline);
    let _ = writeln!(out, "  {}", f.per_1000);
    let scales =
        [("efficiency", &l.efficiency, "no operations declared"), ("index", &l.index, "no reference")];
    for (name, grade, missing) in scales {
        let Some(g) = grade else {
            let why = if name == "index" { l.no_index.as_deref().unwrap_or(missing) } else { missing };
            let _ = writeln!(out, "  {name:<10} -  ({why})");
            continue;
        };
        let mut bar = String::new();
        for (i, code) in ANSI.iter().enumerate() {
            let letter = char::from(b'A' + i as u8);
            let marked = letter == g.grade;
            match (color, marked) {
                (true, true) => {
                    let _ = write!(bar, "\x1b[1;7;38;5;{code}m[{letter}]\x1b[0m");
                }
                (true, false) => {
                    let _ = write!(bar, "\x1b[38;5;{code}m {letter} \x1b[0m");
                }
                (false, true) => {
                    let _ = write!(bar, "[{letter}]");
                }
                (false, false) => {
                    let _ = write!(bar, " {letter} ");
                }
            }
        }
        let _ = writeln!(out, "  {name:<10} {bar}  {}", g.measure);
        let _ = writeln!(out, "             {}", grade_line(g));
    }
    let _ = writeln!(out, "  carbon     {}", f.carbon.join("; "));
    if let Some(t) = &f.training {
        let _ = writeln!(out, "  training   {t}");
    }
    if !f.what_if.is_empty() {
        let _ = writeln!(out, "  what if (projection at published peak, not a measurement):");
        for line in &f.what_if {
            let _ = writeln!(out, "    {line}");
        }
    }
    for w in &l.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    for line in &f.provenance {
        let _ = writeln!(out, "  {line}");
    }
    out
}
