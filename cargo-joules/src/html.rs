//! The HTML report: one self-contained page (no network: charts, flame graphs and the label
//! are inline) with every figure's interval and provenance. Charts are drawn by plotters'
//! SVG backend; flame graphs by inferno, each in its own frame so that its script and ids stay
//! its own.

use std::fmt::Write as _;

use anyhow::anyhow;
use base64::Engine as _;
use joules::compare::{Comparison, Verdict};
use joules::label::Label;
use joules::render::folded::Stack;
use joules::render::{Scale, escape_xml as esc};
use joules::report::{BenchReport, Report};
use joules::stats::Estimate;
use plotters::prelude::*;

/// One bench's part of the page.
pub(crate) struct BenchPage<'a> {
    pub(crate) bench: &'a BenchReport,
    /// Its stacks over the domains no other contains: the bars.
    pub(crate) stacks: Vec<Stack>,
    /// Its flame graph's SVG.
    pub(crate) flamegraph: Option<Vec<u8>>,
    /// Its label, where one could be made.
    pub(crate) label: Option<Label>,
    /// What could not be drawn, and why.
    pub(crate) problems: Vec<String>,
}

/// A comparison shown on the page.
pub(crate) struct ComparisonPage {
    pub(crate) title: String,
    pub(crate) cmp: Comparison,
    pub(crate) flamegraph: Option<Vec<u8>>,
    /// What could not be drawn, and why.
    pub(crate) problems: Vec<String>,
}

fn energy(e: &Estimate) -> String {
    Scale::energy(e.point).estimate(e)
}

/// A horizontal bar per span path: exclusive joules per iteration, with its 95% interval.
pub(crate) fn bars(stacks: &[Stack]) -> anyhow::Result<String> {
    let n = stacks.len();
    if n == 0 {
        return Ok(String::new());
    }
    let names: Vec<String> =
        stacks.iter().map(|s| format!("{}{}", "  ".repeat(s.frames.len() - 1), s.path)).collect();
    let label_px = names.iter().map(|s| s.chars().count()).max().unwrap_or(8) as u32 * 7 + 16;
    let top = stacks
        .iter()
        .map(|s| s.exclusive_j.hi.unwrap_or(s.exclusive_j.point).max(s.exclusive_j.point))
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.08 } else { 1.0 };
    let scale = Scale::energy(top);
    let height = 70 + 24 * n as u32;
    let mut svg = String::new();
    {
        fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
            anyhow!("drawing the bar chart: {e}")
        }
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        // The first path on top: segment n-1-i holds stack i.
        let row = |i: usize| n - 1 - i;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_px.min(420))
            .build_cartesian_2d(0.0..top, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => names[row(*i)].clone(),
                _ => String::new(),
            })
            .x_labels(6)
            .x_label_formatter(&|x| scale.format(*x))
            .x_desc("exclusive joules per iteration, 95% interval")
            .draw()
            .map_err(err)?;
        let fill = RGBColor(0x3b, 0x6e, 0xa8);
        chart
            .draw_series(stacks.iter().enumerate().map(|(i, s)| {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (s.exclusive_j.point.max(0.0), SegmentValue::Exact(row(i) + 1)),
                    ],
                    fill.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(err)?;
        chart
            .draw_series(stacks.iter().enumerate().filter_map(|(i, s)| {
                let e = &s.exclusive_j;
                let (lo, hi) = (e.lo?, e.hi?);
                Some(ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(row(i)),
                    lo.max(0.0),
                    e.point.max(0.0),
                    hi.max(0.0),
                    BLACK.stroke_width(2),
                    10,
                ))
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    // plotters draws each bar as a <rect>; the test and the reader find them by class.
    Ok(svg.replacen(
        "<svg ",
        "<svg class=\"bars\" role=\"img\" aria-label=\"exclusive joules per span path\" ",
        1,
    ))
}

/// An SVG document in a frame of its own (its script runs there, its ids cannot clash).
fn framed(class: &str, svg: &[u8], title: &str) -> String {
    // inferno's script records zoom and search in the page's URL, which a `data:` document
    // may not change (the browser throws on every click): in the page, it keeps none.
    let text = String::from_utf8_lossy(svg);
    let svg = text.replacen("\"use strict\";", "\"use strict\";\nhistory.replaceState = function () {};", 1);
    let data = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
    // As tall as the drawing, which grows with the span tree's depth.
    let height = text
        .find("<svg")
        .and_then(|at| {
            let tag = &text[at..at + text[at..].find('>')?];
            let h = tag.find(" height=\"")? + 9;
            tag[h..][..tag[h..].find('"')?].parse::<f64>().ok()
        })
        .map_or(520.0, |h| h + 8.0);
    format!(
        r#"<iframe class="{class}" title="{}" style="height:{height}px" src="data:image/svg+xml;base64,{data}" loading="eager"></iframe>"#,
        esc(title)
    )
}

fn spans_table(b: &BenchReport) -> String {
    let mut t = String::from(
        "<table class=\"sortable spans\"><thead><tr><th>span</th><th>calls</th><th>time (excl)</th>",
    );
    for d in &b.domains {
        let _ = write!(
            t,
            "<th>{} excl<br><small>{}</small></th><th>{} incl</th>",
            esc(&d.domain),
            esc(&d.provenance),
            esc(&d.domain)
        );
    }
    t.push_str("<th>ops/J (incl)</th><th>method</th><th>flags</th></tr></thead><tbody>\n");
    for s in &b.spans {
        let indent = s.depth as usize;
        let _ = write!(
            t,
            "<tr><td class=\"path\" style=\"padding-left:{}em\">{}</td><td data-v=\"{}\">{:.2}</td><td data-v=\"{}\">{}</td>",
            0.4 + indent as f64,
            esc(s.path.rsplit('/').next().unwrap_or(&s.path)),
            s.calls.point,
            s.calls.point,
            s.exclusive_ns.point,
            Scale::time(s.exclusive_ns.point).estimate(&s.exclusive_ns)
        );
        // By domain id, as the header: a span may lack a domain (one that ended early).
        for d in &b.domains {
            match s.energy.iter().find(|e| e.domain == d.domain) {
                Some(e) => {
                    let _ = write!(
                        t,
                        "<td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td>",
                        e.exclusive_j.point,
                        energy(&e.exclusive_j),
                        e.inclusive_j.point,
                        energy(&e.inclusive_j)
                    );
                }
                None => t.push_str("<td data-v=\"0\">-</td><td data-v=\"0\">-</td>"),
            }
        }
        let rate = s.energy.iter().find_map(|e| e.ops_per_j.as_ref());
        let _ = write!(
            t,
            "<td data-v=\"{}\">{}</td>",
            rate.map_or(0.0, |r| r.point),
            rate.map_or("-".to_owned(), |r| Scale::ops_per_joule(r.point).interval(r))
        );
        let methods: Vec<&str> = s.energy.iter().map(|e| e.method.as_str()).collect();
        let flags: Vec<String> = s.flags.iter().map(flag).collect();
        let _ = writeln!(t, "<td>{}</td><td>{}</td></tr>", esc(&methods.join(", ")), esc(&flags.join("; ")));
    }
    t.push_str("</tbody></table>\n");
    t
}

fn flag(f: &joules::report::Flag) -> String {
    use joules::report::Flag;
    match f {
        Flag::BelowResolution { domain, call_ns, update_period_ns } => format!(
            "{domain}: a call ({}) is shorter than the counter's period ({})",
            Scale::time(*call_ns as f64).format(*call_ns as f64),
            Scale::time(*update_period_ns as f64).format(*update_period_ns as f64)
        ),
        Flag::SpansDropped => "spans inside were dropped".into(),
        Flag::NotLeft => "not left by its own guard".into(),
        Flag::ForgottenInside => "a span inside was never left".into(),
        Flag::Merged { domain, with } => format!("{domain}: merged with {}", with.join(", ")),
        _ => "see the JSON report".into(),
    }
}

fn domains_table(b: &BenchReport) -> String {
    let mut t = String::from(
        "<table class=\"sortable domains\"><thead><tr><th>domain</th><th>kind</th><th>source</th><th>attribution</th>\
         <th>total per iteration</th><th>outside spans</th><th>idle power</th><th>counter step</th><th>update period</th></tr></thead><tbody>\n",
    );
    for d in &b.domains {
        let part = d.part_of.as_ref().map_or(String::new(), |p| format!(" (part of {})", esc(p)));
        let idle = d.idle_w.as_ref().map_or("-".to_owned(), |w| Scale::watts(w.point).estimate(w));
        let period = if d.update_period_ns == 0 {
            "continuous".to_owned()
        } else {
            format!(
                "{} ({})",
                Scale::time(d.update_period_ns as f64).format(d.update_period_ns as f64),
                if d.update_period_measured { "measured" } else { "nominal" }
            )
        };
        let _ = writeln!(
            t,
            "<tr><td>{}{part}</td><td>{:?}</td><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td>{idle}</td><td>{}</td><td>{period}</td></tr>",
            esc(&d.domain),
            d.kind,
            esc(&d.provenance),
            esc(&d.method),
            d.total_j.point,
            energy(&d.total_j),
            d.unattributed_j.point,
            energy(&d.unattributed_j),
            Scale::energy(d.resolution_j).format(d.resolution_j),
        );
    }
    t.push_str("</tbody></table>\n");
    t
}

fn comparison_table(cmp: &Comparison) -> String {
    let mut t = String::from(
        "<table class=\"sortable comparison\"><thead><tr><th>bench</th><th>span</th><th>domain</th><th>old</th><th>new</th>\
         <th>change [95%]</th><th>verdict</th></tr></thead><tbody>\n",
    );
    for c in &cmp.changes {
        let j = |v: Option<f64>| v.map_or("-".to_owned(), |v| Scale::energy(v).format(v));
        let change = c.change.as_ref().map_or("-".to_owned(), |r| {
            format!("{:+.1}% [{:+.1}%, {:+.1}%]", r.point * 100.0, r.lo * 100.0, r.hi * 100.0)
        });
        let class = match c.verdict {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            _ => "",
        };
        let _ = writeln!(
            t,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{change}</td><td>{}</td></tr>",
            esc(&c.bench),
            esc(&c.path),
            esc(&c.domain),
            c.old_j.unwrap_or(0.0),
            j(c.old_j),
            c.new_j.unwrap_or(0.0),
            j(c.new_j),
            c.change.as_ref().map_or(0.0, |r| r.point),
            c.verdict.name()
        );
    }
    t.push_str("</tbody></table>\n");
    t
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 2em auto; max-width: 1200px; color: #1a1a1a; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
.meta { color: #444; font-size: 0.9em; }
.estimated { border: 4px solid #ed1c24; color: #ed1c24; font-size: 1.6em; font-weight: bold; padding: 0.4em 0.8em; margin: 1em 0; }
section.bench, section.comparison { border-top: 2px solid #ddd; margin-top: 2em; padding-top: 0.5em; }
.row { display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; vertical-align: top; }
td.path, th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; cursor: pointer; }
th small { font-weight: normal; color: #555; }
tr.regressed td { background: #fde2e2; }
tr.improved td { background: #e0ecfb; }
iframe.flamegraph { width: 100%; height: 520px; border: 1px solid #ccc; }
.note { color: #444; font-size: 0.9em; }
.warning { color: #a15c00; }
"#;

/// Sorts a table by a column on a click on its header: numbers by their `data-v`.
const SCRIPT: &str = r#"
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.getAttribute("data-sort") !== "down";
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var vx = x.getAttribute("data-v"), vy = y.getAttribute("data-v");
        var c = (vx !== null && vy !== null) ? parseFloat(vx) - parseFloat(vy) : x.textContent.localeCompare(y.textContent);
        return down ? -c : c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.setAttribute("data-sort", down ? "down" : "up");
    });
  });
});
"#;

/// The page.
pub(crate) fn page(
    report: &Report,
    source: &str,
    benches: &[BenchPage<'_>],
    comparison: Option<&ComparisonPage>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let h = &report.host;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>joules report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(source)
    );
    let _ = writeln!(out, "<header><h1>joules report</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} · {} · made by {} · {} run(s) per bench<br>machine: {} ({} logical CPUs), kernel {}, {}</p>",
        esc(source),
        joules::label::utc(report.created_unix_s),
        esc(&report.tool),
        report.runs,
        esc(&h.cpu_model),
        h.logical_cpus,
        esc(&h.kernel),
        esc(&h.os)
    );
    let estimated = report
        .sources
        .iter()
        .any(|s| matches!(s.kind, joules::source::SourceKind::Estimate | joules::source::SourceKind::Sim));
    if estimated {
        let _ = writeln!(
            out,
            "<div class=\"estimated\">ESTIMATED — NOT MEASURED: figures marked estimated or simulated come from a model, not an energy counter</div>"
        );
    }
    out.push_str("<h2>Sources</h2><ul class=\"sources\">\n");
    for s in &report.sources {
        let _ =
            writeln!(out, "<li><b>{:?}</b>: {} — {}</li>", s.kind, esc(&s.provenance), esc(&s.description));
    }
    for u in &report.unavailable {
        let fix = u.fix.as_deref().map_or(String::new(), |f| format!(" (fix: {})", esc(f)));
        let _ =
            writeln!(out, "<li class=\"note\">not used: {}: {}{fix}</li>", esc(&u.source), esc(&u.reason));
    }
    out.push_str("</ul></header>\n");

    if let Some(c) = comparison {
        let _ = writeln!(out, "<section class=\"comparison\"><h2>{}</h2>", esc(&c.title));
        let _ = writeln!(
            out,
            "<p class=\"note\">A change counts when it is significant (p &lt; {} after Holm's correction) and its whole interval is beyond ±{:.0}% noise; red costlier, blue cheaper.</p>",
            c.cmp.significance,
            c.cmp.noise * 100.0
        );
        for m in &c.cmp.mismatches {
            let _ = writeln!(out, "<p class=\"warning\">not like for like: {}</p>", esc(m));
        }
        out.push_str(&comparison_table(&c.cmp));
        for note in &c.cmp.notes {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(note));
        }
        for p in &c.problems {
            let _ = writeln!(out, "<p class=\"warning\">{}</p>", esc(p));
        }
        if let Some(svg) = &c.flamegraph {
            out.push_str("<h3>Differential flame graph</h3>\n");
            out.push_str(&framed("flamegraph diff", svg, "differential flame graph"));
        }
        out.push_str("</section>\n");
    }

    for (i, b) in benches.iter().enumerate() {
        let bench = b.bench;
        let _ = writeln!(out, "<section class=\"bench\" id=\"bench-{i}\"><h2>{}</h2>", esc(&bench.name));
        if let Some(e) = bench.energy_per_inference() {
            let _ = writeln!(
                out,
                "<p><b>{}</b> per inference ({} inference(s) per iteration)</p>",
                energy(&e),
                bench.inferences_per_iteration
            );
        }
        out.push_str("<div class=\"row\">\n<div>\n<h3>Energy per layer</h3>\n");
        out.push_str(&bars(&b.stacks)?);
        out.push_str("</div>\n");
        if let Some(l) = &b.label {
            out.push_str("<div class=\"label\">\n<h3>Label</h3>\n");
            out.push_str(&joules::render::label::svg(l).replacen(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "",
                1,
            ));
            out.push_str("</div>\n");
        }
        out.push_str("</div>\n<h3>Spans</h3>\n");
        out.push_str(&spans_table(bench));
        out.push_str("<h3>Domains: where every figure comes from</h3>\n");
        out.push_str(&domains_table(bench));
        if let Some(svg) = &b.flamegraph {
            out.push_str("<h3>Flame graph</h3>\n");
            out.push_str(&framed("flamegraph", svg, &format!("flame graph of {}", bench.name)));
        }
        out.push_str(
            "<h3>Power timeline</h3>\n<p class=\"note timeline\">This report carries no power timeline: \
             reports keep per-span figures, not the readings they came from.</p>\n",
        );
        for p in &b.problems {
            let _ = writeln!(out, "<p class=\"warning\">{}</p>", esc(p));
        }
        for w in &bench.warnings {
            let _ = writeln!(out, "<p class=\"warning\">warning: {}</p>", esc(w));
        }
        for n in &bench.notes {
            let _ = writeln!(out, "<p class=\"note\">note: {}</p>", esc(n));
        }
        out.push_str("</section>\n");
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    Ok(out)
}
