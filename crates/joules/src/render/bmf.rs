//! Bencher Metric Format: `{ "<bench>/<span path>": { "<measure>": { "value", "lower_value",
//! "upper_value" } } }`, one energy measure per domain (`energy-<domain>`, joules) and
//! `latency` (nanoseconds, exclusive time per iteration).

use serde_json::{Map, Value, json};

use crate::report::Report;
use crate::stats::Estimate;

fn metric(e: &Estimate) -> Value {
    let mut m = Map::new();
    m.insert("value".into(), json!(e.point));
    if let (Some(lo), Some(hi)) = (e.lo, e.hi) {
        m.insert("lower_value".into(), json!(lo));
        m.insert("upper_value".into(), json!(hi));
    }
    Value::Object(m)
}

fn slug(domain: &str) -> String {
    format!("energy-{}", domain.replace('/', "-"))
}

pub(super) fn report(report: &Report) -> String {
    let mut root = Map::new();
    for b in &report.benches {
        let mut total = Map::new();
        for d in &b.domains {
            total.insert(slug(&d.domain), metric(&d.total_j));
        }
        root.insert(format!("{}/(total)", b.name), Value::Object(total));
        for s in &b.spans {
            let mut m = Map::new();
            for e in &s.energy {
                m.insert(slug(&e.domain), metric(&e.exclusive_j));
            }
            m.insert("latency".into(), metric(&s.exclusive_ns));
            root.insert(format!("{}/{}", b.name, s.path), Value::Object(m));
        }
    }
    serde_json::to_string_pretty(&Value::Object(root)).expect("serializes") + "\n"
}
