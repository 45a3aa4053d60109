//! A live profile's totals for Prometheus (scraped over loopback, parsed by a real
//! exposition parser) and OpenTelemetry (read back from the SDK's in-memory exporter).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use joules::live::LiveConfig;
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};
use prometheus_parse::{Scrape, Value};

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::black_box(0u64);
    }
}

fn requests(n: u64) {
    for _ in 0..n {
        let _r = joules::span!("request");
        {
            let _a = joules::span!("layer_a");
            spin(Duration::from_micros(200));
        }
        let _b = joules::span!("layer_b");
        spin(Duration::from_micros(100));
    }
}

fn live_sim() -> Profiler {
    let script = SimScript::new(Watts(5.0))
        .span("request", Watts(12.0))
        .span("layer_a", Watts(50.0))
        .span("layer_b", Watts(25.0));
    Profiler::builder()
        .source(Sim::new(script))
        .live(LiveConfig::default().fold_every(Duration::from_millis(100)))
        .start()
        .unwrap()
}

/// GET /metrics over loopback; the body.
fn scrape(addr: std::net::SocketAddr, accept: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

/// A series: its metric and sorted labels.
type Key = (String, Vec<(String, String)>);

/// (metric, sorted labels) -> value, counters and gauges alike.
fn series(s: &Scrape) -> BTreeMap<Key, f64> {
    s.samples
        .iter()
        .map(|x| {
            let v = match x.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => panic!("{}: not a counter or gauge", x.metric),
            };
            let mut labels: Vec<(String, String)> =
                x.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            ((x.metric.clone(), labels), v)
        })
        .collect()
}

#[test]
fn prometheus_counters_grow_between_scrapes_with_conventional_names_and_bounded_labels() {
    let _lock = joules_tests::profiler_lock();
    let profiler = live_sim();
    let registry = joules::prometheus::registry(profiler.live().unwrap());
    let server = joules::prometheus::serve("127.0.0.1:0", registry).unwrap();
    requests(300);
    std::thread::sleep(Duration::from_millis(250));
    let first = parse(&scrape(server.addr(), "text/plain"));
    requests(300);
    std::thread::sleep(Duration::from_millis(250));
    let second = parse(&scrape(server.addr(), "text/plain"));
    // Many more requests: the label sets must not grow with them.
    requests(1500);
    std::thread::sleep(Duration::from_millis(250));
    let third_text = scrape(server.addr(), "text/plain");
    let third = parse(&third_text);

    let (a, b, c) = (series(&first), series(&second), series(&third));
    // Types as declared, and Prometheus's naming rules: base units in the name, counters
    // ending in _total, one prefix.
    for x in &third.samples {
        assert!(x.metric.starts_with("joules_"), "{}", x.metric);
        assert!(x.metric.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", x.metric);
        match x.value {
            Value::Counter(_) => assert!(x.metric.ends_with("_total"), "counter {}", x.metric),
            Value::Gauge(_) => assert!(!x.metric.ends_with("_total"), "gauge {}", x.metric),
            _ => panic!("{} is neither a counter nor a gauge", x.metric),
        }
        if x.metric.contains("energy") {
            assert!(x.metric.ends_with("_energy_joules_total"), "energy in joules: {}", x.metric);
        }
        assert!(
            third.docs.contains_key(x.metric.trim_end_matches("_total"))
                || third.docs.contains_key(&x.metric),
            "{} has HELP",
            x.metric
        );
    }
    assert!(third.samples.iter().any(|x| x.metric == "joules_profiled_seconds_total"));
    // Counters grow: every one is at least what it was, and the busy paths' strictly more.
    for (key, v) in &b {
        if key.0.ends_with("_total") {
            assert!(*v >= a.get(key).copied().unwrap_or(0.0), "{key:?} went back: {v}");
        }
    }
    let calls = |m: &BTreeMap<Key, f64>, span: &str| {
        m[&("joules_span_calls_total".to_owned(), vec![("span".to_owned(), span.to_owned())])]
    };
    assert!(calls(&b, "request") > calls(&a, "request"), "calls grow between scrapes");
    let energy = |m: &BTreeMap<Key, f64>, span: &str| {
        let key = (
            "joules_span_exclusive_energy_joules_total".to_owned(),
            vec![("domain".to_owned(), "sim-package".to_owned()), ("span".to_owned(), span.to_owned())],
        );
        m[&key]
    };
    assert!(energy(&b, "request/layer_a") > energy(&a, "request/layer_a"));
    // Bounded: the same series after 5x the requests, one per path (and domain).
    let keys = |m: &BTreeMap<Key, f64>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(&b), keys(&c), "the label sets do not grow with requests");
    let spans: BTreeSet<&str> = third.samples.iter().filter_map(|x| x.labels.get("span")).collect();
    assert_eq!(spans, BTreeSet::from(["request", "request/layer_a", "request/layer_b"]));
    assert_eq!(calls(&c, "request/layer_a"), calls(&c, "request"));
    let up = c[&(
        "joules_domain_up".to_owned(),
        vec![("domain".into(), "sim-package".into()), ("source".into(), "sim".into())],
    )];
    let estimated = c[&(
        "joules_domain_estimated".to_owned(),
        vec![("domain".into(), "sim-package".into()), ("source".into(), "sim".into())],
    )];
    assert_eq!((up, estimated), (1.0, 1.0), "the simulator is up and is no hardware counter");

    // OpenMetrics for a scraper that asks for it: units declared, the exposition ended.
    let om = scrape(server.addr(), "application/openmetrics-text; version=1.0.0");
    assert!(om.contains("# UNIT joules_span_exclusive_energy_joules joules"), "{om}");
    assert!(om.trim_end().ends_with("# EOF"));
    drop(server);
    profiler.stop();
}

#[test]
fn opentelemetry_metrics_read_back_from_the_in_memory_exporter() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let _lock = joules_tests::profiler_lock();
    let exporter = InMemoryMetricExporter::default();
    let provider =
        SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    let meter = provider.meter("joules-test");
    let profiler = live_sim();
    let live = profiler.live().unwrap();
    let _instruments = joules::otel::register(&meter, &live);
    requests(400);
    profiler.stop();
    let totals = live.totals();
    provider.force_flush().unwrap();
    let metrics = exporter.get_finished_metrics().unwrap();
    let last = metrics.last().expect("one export");
    let mut seen = BTreeMap::new();
    // Each value check below must run: an SDK that shaped its data otherwise fails here.
    let mut checked = 0;
    for scope in last.scope_metrics() {
        for m in scope.metrics() {
            seen.insert(m.name().to_owned(), m.unit().to_owned());
            match (m.name(), m.data()) {
                ("joules.span.calls", AggregatedMetrics::U64(MetricData::Sum(sum))) => {
                    assert!(sum.is_monotonic());
                    let request = sum
                        .data_points()
                        .find(|p| {
                            p.attributes()
                                .any(|kv| kv.key.as_str() == "span" && kv.value.as_str() == "request")
                        })
                        .expect("a point for the request span");
                    assert_eq!(request.value(), 400);
                    checked += 1;
                }
                ("joules.span.inclusive_energy", AggregatedMetrics::F64(MetricData::Sum(sum))) => {
                    assert!(sum.is_monotonic());
                    let got: f64 = sum
                        .data_points()
                        .filter(|p| {
                            p.attributes()
                                .any(|kv| kv.key.as_str() == "span" && kv.value.as_str() == "request")
                        })
                        .map(|p| p.value())
                        .sum();
                    let want = totals.paths.iter().find(|p| p.name == "request").unwrap().inclusive[0].0;
                    assert!(want > 0.0 && (got - want).abs() < 1e-9, "exported {got} J, totals {want} J");
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(checked, 2, "the calls and inclusive energy points were found and checked");
    for (name, unit) in [
        ("joules.span.calls", "{call}"),
        ("joules.span.inclusive_energy", "J"),
        ("joules.span.exclusive_energy", "J"),
        ("joules.domain.energy", "J"),
        ("joules.profiled_time", "s"),
        ("joules.domain.up", "1"),
    ] {
        assert_eq!(seen.get(name).map(String::as_str), Some(unit), "{name}: {seen:?}");
    }
    provider.shutdown().unwrap();
}
