//! `cargo joules flamegraph [REPORT]`, `--diff OLD NEW`, `--benches OLD NEW`: an SVG flame
//! graph of exclusive joules per span path, drawn by inferno from folded stacks.

use anyhow::{Context, anyhow};
use inferno::flamegraph::{self, Options};
use joules::compare::{self, Verdict};
use joules::exit::ExitCodes;
use joules::render::folded::{self, Domains, Stack};
use joules::report::BenchReport;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::output::{config, joules_dir, load, pick_bench, report_arg, write_atomic};
use super::{Failure, WithCode};
use crate::cli::FlamegraphArgs;

pub(crate) fn run(args: &FlamegraphArgs) -> Result<u8, Failure> {
    let manifest = args.manifest_path.as_deref();
    let graph = if let Some(pair) = &args.diff {
        let old = load(&report_arg(Some(&pair[0]), manifest)?, "old report", "")?;
        let new = load(&report_arg(Some(&pair[1]), manifest)?, "new report", "")?;
        let cmp = compare::compare(&old, &new, &config(&args.gate)?).code(ExitCodes::INCOMPARABLE)?;
        let bench = pick_bench(&new, args.bench.as_deref())?;
        differential(
            bench,
            &bench.name,
            &cmp,
            args.domain.as_deref(),
            Some(&format!("{} → {}", pair[0], pair[1])),
        )?
    } else if let Some(pair) = &args.benches {
        let path = report_arg(args.report.as_deref(), manifest)?;
        let report = load(&path, "report", " (run `cargo joules bench` first)")?;
        let cmp =
            compare::variants(&report, &pair[0], &pair[1], &config(&args.gate)?).code(ExitCodes::USAGE)?;
        let old = compare::find_bench(&report, &pair[0]).code(ExitCodes::USAGE)?;
        let new = compare::find_bench(&report, &pair[1]).code(ExitCodes::USAGE)?;
        let label = compare::variants_label(old, new);
        differential(new, &label, &cmp, args.domain.as_deref(), None)?
    } else {
        let path = report_arg(args.report.as_deref(), manifest)?;
        let report = load(&path, "report", " (run `cargo joules bench` first)")?;
        let bench = pick_bench(&report, args.bench.as_deref())?;
        plain(bench, args.domain.as_deref())?
    };
    let default_name = if graph.differential { "flamegraph-diff.svg" } else { "flamegraph.svg" };
    let out = match &args.output {
        Some(p) => p.clone(),
        None => joules_dir(manifest)?.join(default_name),
    };
    let svg = render(&graph).code(ExitCodes::USAGE)?;
    write_atomic(&out, &svg).code(ExitCodes::USAGE)?;
    if let Some(path) = &args.folded {
        let text = folded::folded(&graph.stacks).join("\n") + "\n";
        write_atomic(path, text.as_bytes()).code(ExitCodes::USAGE)?;
    }
    eprintln!("joules: flame graph written to {}", out.display());
    Ok(ExitCodes::OK)
}

/// A bench's exclusive joules per span path, over `domain` or the domains no other contains.
pub(crate) fn plain(bench: &BenchReport, domain: Option<&str>) -> Result<Graph, Failure> {
    let domains = domain.map_or(Domains::Top, |d| Domains::One(d.to_owned()));
    let stacks = folded::stacks(bench, &domains).map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    let provenance = folded::provenance(bench, &domains).map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    let outside = folded::unattributed(bench, &domains).map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    Ok(Graph {
        title: format!("{}: exclusive joules per span path, per iteration", bench.name),
        subtitle: format!(
            "{provenance} · not drawn: {} per iteration outside any span",
            joules::render::Scale::energy(outside.point).format(outside.point)
        ),
        stacks,
        not_drawn: Vec::new(),
        differential: false,
    })
}

/// What an SVG shows.
pub(crate) struct Graph {
    pub(crate) title: String,
    pub(crate) subtitle: String,
    pub(crate) stacks: Vec<Stack>,
    /// Paths that have no frame (gone from the new report), said in the subtitle.
    pub(crate) not_drawn: Vec<String>,
    pub(crate) differential: bool,
}

/// The new bench's stacks in one domain, coloured by the comparison's significant changes.
pub(crate) fn differential(
    new: &BenchReport,
    label: &str,
    cmp: &compare::Comparison,
    domain: Option<&str>,
    reports: Option<&str>,
) -> Result<Graph, Failure> {
    let domain = match domain {
        Some(d) => d.to_owned(),
        None => new
            .domains
            .iter()
            .find(|d| d.part_of.is_none())
            .map(|d| d.domain.clone())
            .ok_or_else(|| anyhow!("bench `{}` measured no energy domain", new.name))
            .code(ExitCodes::USAGE)?,
    };
    let (stacks, removed) =
        folded::diff_stacks(new, cmp, label, &domain).map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    let provenance = folded::provenance(new, &Domains::One(domain.clone()))
        .map_err(|e| anyhow!(e))
        .code(ExitCodes::USAGE)?;
    let coloured =
        stacks.iter().filter(|s| matches!(s.verdict, Some(Verdict::Regressed | Verdict::Improved))).count();
    Ok(Graph {
        title: match reports {
            Some(r) => format!("{label}: change in exclusive joules per span path ({r})"),
            None => format!("{label}: change in exclusive joules per span path"),
        },
        subtitle: format!(
            "red costlier, blue cheaper, white not significant or new ({coloured} of {} coloured) · {provenance}",
            stacks.len()
        ),
        stacks,
        not_drawn: removed,
        differential: true,
    })
}

/// The SVG of `graph`.
pub(crate) fn render(graph: &Graph) -> anyhow::Result<Vec<u8>> {
    let lines = folded::folded(&graph.stacks);
    if lines.iter().all(|l| l.rsplit(' ').next() == Some("0")) {
        return Err(anyhow!("nothing to draw: no span path has energy in this report"));
    }
    let mut opt = Options::default();
    opt.title = graph.title.clone();
    let mut subtitle = graph.subtitle.clone();
    if !graph.not_drawn.is_empty() {
        let _ = write!(subtitle, " · gone from the new report: {}", graph.not_drawn.join(", "));
    }
    // Drawn from the exclusive figures (negatives count 0): a path with none under it too
    // has no width.
    let width = |s: &Stack| -> u64 {
        graph
            .stacks
            .iter()
            .filter(|o| o.frames.len() >= s.frames.len() && o.frames[..s.frames.len()] == s.frames[..])
            .map(|o| folded::nanojoules(o.exclusive_j.point))
            .sum()
    };
    let zero: Vec<&str> = graph.stacks.iter().filter(|s| width(s) == 0).map(|s| s.path.as_str()).collect();
    if !zero.is_empty() {
        let _ = write!(subtitle, " · zero width (no energy): {}", zero.join(", "));
    }
    opt.subtitle = Some(subtitle);
    opt.count_name = "nJ".into();
    opt.name_type = "Span:".into();
    // The same colour for the same span in every graph.
    opt.hash = true;
    opt.deterministic = true;
    // A frame for every path with energy, however thin.
    opt.min_width = 0.0;
    let mut svg = Vec::new();
    // inferno sorts lines as strings, which can split a path's lines apart (see
    // `folded::folded`); in flame-chart mode it takes them as given, reversed, and merges
    // neighbours all the same. So they go in reversed, in frame-by-frame order.
    opt.flame_chart = true;
    flamegraph::from_lines(&mut opt, lines.iter().rev().map(String::as_str), &mut svg)
        .context("drawing the flame graph")?;
    let svg = String::from_utf8(svg).context("inferno wrote UTF-8")?;
    Ok(retitle(&svg, &graph.stacks)?.into_bytes())
}

/// A frame as inferno draws it: its name, where it starts and how wide it is.
type FrameKey = (String, u64, u64);

/// Each frame's tooltip replaced by its path's title. A frame is found by its name, where it
/// starts and how wide it is (inferno's `fg:x` and `fg:w`, in nanojoules), as the ordered
/// lines place it; frames alike in all three (a span inside one of the same name, with no
/// energy of its own) are told apart by depth, from their height (`y`: the root is lowest).
/// The root frame (`all`) keeps inferno's title.
fn retitle(svg: &str, stacks: &[Stack]) -> anyhow::Result<String> {
    let order: Vec<(Vec<String>, u64)> = folded::in_order(stacks)
        .iter()
        .map(|s| (folded::frame_names(s), folded::nanojoules(s.exclusive_j.point)))
        .collect();
    let mut titles: HashMap<FrameKey, Vec<(usize, &str)>> = HashMap::new();
    for s in stacks {
        let mine = folded::frame_names(s);
        let depth = mine.len();
        let under = |frames: &[String]| frames.len() >= depth && frames[..depth] == mine[..];
        let start: u64 = order.iter().take_while(|(f, _)| !under(f)).map(|(_, w)| w).sum();
        let width: u64 = order.iter().filter(|(f, _)| under(f)).map(|(_, w)| w).sum();
        let name = mine.last().context("a stack with no frame")?.clone();
        titles.entry((name, start, width)).or_default().push((depth, s.title.as_str()));
    }
    for list in titles.values_mut() {
        list.sort_by_key(|(depth, _)| *depth);
    }
    // Every frame: where its title is in the SVG, its key, and its height.
    struct Found {
        title: std::ops::Range<usize>,
        key: FrameKey,
        y: f64,
    }
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = svg[from..].find("<g><title>") {
        let start = from + at + "<g><title>".len();
        let end = start + svg[start..].find("</title>").context("a frame's title is not closed")?;
        let rect_end = end + svg[end..].find("/>").context("a frame without a rect")?;
        let rect = &svg[end..rect_end];
        let attr = |name: &str| -> Option<&str> {
            let at = rect.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(&rect[at..][..rect[at..].find('"')?])
        };
        let number = |name: &str| attr(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // The default title: `name (count nJ, share%[; change%])`.
        let title = &svg[start..end];
        let name = title.rsplit_once(" (").map_or(title, |(n, _)| n);
        found.push(Found {
            title: start..end,
            key: (unescape(name), number("fg:x"), number("fg:w")),
            y: attr("y").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        });
        from = rect_end;
    }
    let root_y = found.iter().map(|f| f.y).fold(f64::MIN, f64::max);
    // Frames alike, from the root up: lowest on the page first.
    let mut alike: HashMap<&FrameKey, Vec<usize>> = HashMap::new();
    for (i, f) in found.iter().enumerate().filter(|(_, f)| f.y < root_y) {
        alike.entry(&f.key).or_default().push(i);
    }
    let mut replace: Vec<(std::ops::Range<usize>, &str, &str)> = Vec::new();
    for (key, mut frames) in alike {
        frames.sort_by(|&a, &b| found[b].y.total_cmp(&found[a].y));
        if let Some(list) = titles.get(key) {
            for (&i, (_, title)) in frames.iter().zip(list) {
                replace.push((found[i].title.clone(), key.0.as_str(), title));
            }
        }
    }
    replace.sort_by_key(|(range, _, _)| range.start);
    let mut out = String::with_capacity(svg.len() + 64 * stacks.len());
    let mut at = 0;
    for (range, name, title) in replace {
        out.push_str(&svg[at..range.start]);
        // In a browser inferno's script labels a frame with its title less a last
        // parenthesis: so the name comes first and the tooltip goes in one, with no other
        // parentheses in it.
        let tooltip = title.replace('(', "[").replace(')', "]");
        out.push_str(&escape(&format!("{name} ({tooltip})")));
        at = range.end;
    }
    out.push_str(&svg[at..]);
    Ok(out)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
