//! The MLP as a service: it answers requests in a loop under a live profiler and exposes
//! joules per layer to Prometheus (and, built with `--features otlp`, pushes them over OTLP).
//!
//! ```text
//! cargo run --release -p joules-example-mlp --example service -- [--listen ADDR] [--rate N] [--seconds S] [--otlp URL]
//! curl -s localhost:9464/metrics | grep joules_span
//! ```
//!
//! `--listen` defaults to 127.0.0.1:9464, `--rate` to 1000 requests a second, `--seconds` to
//! running until stopped. Each request is one input (a batch of 1) through `request` ->
//! `forward` -> the layers; every 10 s the service prints joules per request from its own
//! totals, as a Prometheus query over the same counters would.

use std::time::{Duration, Instant};

use joules::Profiler;
use joules::live::{LiveConfig, Totals};
use joules_example_mlp::{Mlp, batch};

struct Args {
    listen: String,
    rate: f64,
    seconds: Option<f64>,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    otlp: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args { listen: "127.0.0.1:9464".into(), rate: 1000.0, seconds: None, otlp: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?,
            "--rate" => a.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => a.seconds = Some(value()?.parse().map_err(|e| format!("--seconds: {e}"))?),
            "--otlp" => a.otlp = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !a.rate.is_finite() || a.rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(a)
}

/// Joules per request: the request path's inclusive energy over its calls, per domain.
fn per_request(t: &Totals) -> String {
    let Some(r) = t.paths.iter().find(|p| p.name == "request") else { return "no request folded yet".into() };
    if r.calls == 0 {
        return "no request folded yet".into();
    }
    t.domains
        .iter()
        .enumerate()
        .map(|(d, dom)| {
            format!(
                "{}: {:.1} µJ/request ({})",
                dom.id,
                r.inclusive[d].0 / r.calls as f64 * 1e6,
                dom.provenance
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let profiler = Profiler::builder().live(LiveConfig::default()).start()?;
    let live = profiler.live().expect("a live profiler has totals");
    let server = joules::prometheus::serve(args.listen.as_str(), joules::prometheus::registry(live.clone()))?;
    eprintln!("service: metrics at http://{}/metrics", server.addr());
    #[cfg(feature = "otlp")]
    let otlp = match &args.otlp {
        Some(url) => {
            use opentelemetry::metrics::MeterProvider as _;
            let provider = joules::otel::otlp_meter_provider(url, Duration::from_secs(10))?;
            let instruments = joules::otel::register(&provider.meter("joules-example-mlp"), &live);
            eprintln!("service: pushing OTLP metrics to {url} every 10 s");
            Some((provider, instruments))
        }
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    if args.otlp.is_some() {
        return Err("--otlp needs the example built with --features otlp".into());
    }
    let model = Mlp::new(42);
    let input = batch(1, 7);
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let (mut next, mut report) = (start, start + Duration::from_secs(10));
    let mut served = 0u64;
    while args.seconds.is_none_or(|s| start.elapsed().as_secs_f64() < s) {
        {
            let _request = joules::span!("request");
            std::hint::black_box(model.forward(&input));
        }
        served += 1;
        if Instant::now() >= report {
            eprintln!("service: {served} requests; {}", per_request(&live.totals()));
            report += Duration::from_secs(10);
        }
        next += gap;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    drop(server);
    profiler.stop();
    eprintln!("service: {served} requests; {}", per_request(&live.totals()));
    #[cfg(feature = "otlp")]
    if let Some((provider, _)) = otlp {
        provider.shutdown()?;
    }
    Ok(())
}
