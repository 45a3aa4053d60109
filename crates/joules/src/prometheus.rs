//! A live profile's totals as Prometheus metrics (feature `prometheus`), on
//! [`prometheus_client`], and a small HTTP server for them.
//!
//! Fleets are Prometheus's job: each process exposes its own monotonic counters, and
//! `rate()` and `sum by` do the rest across machines. The metrics, all prefixed `joules_`:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `joules_span_exclusive_energy_joules_total` | counter | `span`, `domain` |
//! | `joules_span_inclusive_energy_joules_total` | counter | `span`, `domain` |
//! | `joules_span_calls_total` | counter | `span` |
//! | `joules_domain_energy_joules_total` | counter | `domain`, `source` |
//! | `joules_domain_unattributed_energy_joules_total` | counter | `domain`, `source` |
//! | `joules_profiled_seconds_total` | counter | |
//! | `joules_domain_up` | gauge | `domain`, `source` (0 once the domain stopped being read) |
//! | `joules_domain_estimated` | gauge | `domain`, `source` (1 where no hardware energy counter reads it) |
//!
//! Labels stay bounded: a `span` is a span path, which the code fixes (no request ids, no
//! user input), a `domain` one of the machine's counters. A path's label is its report name:
//! it gains its module only when a sibling of the same name first runs, and its series then
//! goes on under the new label (Prometheus sees a new series, and the old one stops). Units follow Prometheus: joules
//! and seconds, base units, in the name; counters end in `_total`. Joules per request of a
//! layer across a fleet:
//!
//! ```text
//! sum by (span) (rate(joules_span_exclusive_energy_joules_total[5m]))
//!   / scalar(sum(rate(joules_span_calls_total{span="request"}[5m])))
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::live::{Live, Totals};

/// Encodes a live profile's totals at every scrape.
#[derive(Debug)]
pub struct EnergyCollector {
    live: Live,
}

impl EnergyCollector {
    /// The collector of `live`'s totals.
    pub fn new(live: Live) -> Self {
        EnergyCollector { live }
    }
}

/// A registry holding only the collector of `live`'s totals (register more of your own).
pub fn registry(live: Live) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EnergyCollector::new(live)));
    registry
}

impl Collector for EnergyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t: Totals = self.live.totals();
        let joules = Unit::Joules;
        let seconds = Unit::Seconds;
        // A family with a unit and no sample is invalid OpenMetrics: nothing before the
        // first fold.
        if !t.paths.is_empty() {
            for (name, help, inclusive) in [
                (
                    "joules_span_exclusive_energy",
                    "Energy of a span path as the innermost span, per domain",
                    false,
                ),
                (
                    "joules_span_inclusive_energy",
                    "Energy of a span path with its descendants, per domain",
                    true,
                ),
            ] {
                let mut family = encoder.encode_descriptor(name, help, Some(&joules), MetricType::Counter)?;
                for (span, domain, e) in t.span_energy(inclusive) {
                    ConstCounter::new(e.0)
                        .encode(family.encode_family(&[("span", span), ("domain", domain)])?)?;
                }
            }
            let mut calls = encoder.encode_descriptor(
                "joules_span_calls",
                "Times a span path was entered",
                None,
                MetricType::Counter,
            )?;
            for p in &t.paths {
                ConstCounter::new(p.calls).encode(calls.encode_family(&[("span", p.name.as_str())])?)?;
            }
        }
        if !t.domains.is_empty() {
            for (name, help, unattributed) in [
                ("joules_domain_energy", "Energy an energy domain's counter saw in the profiled time", false),
                ("joules_domain_unattributed_energy", "Energy of a domain while no span ran", true),
            ] {
                let mut family = encoder.encode_descriptor(name, help, Some(&joules), MetricType::Counter)?;
                for d in &t.domains {
                    let e = if unattributed { d.unattributed } else { d.energy };
                    let labels = [("domain", d.id.as_str()), ("source", d.source.name())];
                    ConstCounter::new(e.0).encode(family.encode_family(&labels)?)?;
                }
            }
            for (name, help, up) in [
                (
                    "joules_domain_up",
                    "1 while a domain is read, 0 once it stopped (a lost GPU, a failed read)",
                    true,
                ),
                (
                    "joules_domain_estimated",
                    "1 where no hardware energy counter reads the domain (estimate, integrated power, simulator)",
                    false,
                ),
            ] {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for d in &t.domains {
                    let v: i64 = if up { i64::from(d.lost.is_none()) } else { i64::from(!d.measured) };
                    let labels = [("domain", d.id.as_str()), ("source", d.source.name())];
                    ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let profiled = ConstCounter::new(t.covered.as_secs_f64());
        profiled.encode(encoder.encode_descriptor(
            "joules_profiled",
            "Wall time folded into the totals",
            Some(&seconds),
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// `registry` as text: OpenMetrics where `accept` asks for it, else the Prometheus text
/// format 0.0.4; with its content type.
pub fn encode(registry: &Registry, accept: &str) -> Result<(String, &'static str), std::fmt::Error> {
    let mut body = String::new();
    if accept.contains("application/openmetrics-text") {
        prometheus_client::encoding::text::encode(&mut body, registry)?;
        Ok((body, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
        Ok((body, prometheus_client::encoding::prometheus_text::CONTENT_TYPE))
    }
}

/// Serves `GET /metrics` on a thread of its own until dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `registry` at `http://<addr>/metrics` (port 0 picks a free one: see
/// [`MetricsServer::addr`]). One scrape at a time, each with a 5 s timeout: Prometheus
/// scrapes every few seconds at most, so nothing more is needed.
pub fn serve(addr: impl ToSocketAddrs, registry: Registry) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name("joules-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            if flag.load(Ordering::Acquire) {
                break;
            }
            match stream {
                // A client that fails mid-request costs it its answer, never the server.
                Ok(stream) => {
                    let _ = answer(stream, &registry);
                }
                // Out of file descriptors, say: wait rather than spin on the error.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })?;
    Ok(MetricsServer { addr, stop, thread: Some(thread) })
}

impl MetricsServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request's head (request line and headers) may be this long at most.
const MAX_HEAD: u64 = 16 * 1024;
/// A client has this long to send its request: one that trickles cannot hold the server.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

fn answer(stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let time_left = |s: &TcpStream| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"));
        }
        s.set_read_timeout(Some(left))
    };
    let mut reader = BufReader::new(std::io::Read::take(stream.try_clone()?, MAX_HEAD));
    let mut request = String::new();
    time_left(&stream)?;
    reader.read_line(&mut request)?;
    let mut accept = String::new();
    loop {
        let mut line = String::new();
        time_left(&stream)?;
        // Headers end with an empty line; read them all, or closing resets the connection.
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("accept")
        {
            accept = value.trim().to_owned();
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = if method != "GET" {
        ("405 Method Not Allowed", "text/plain", "only GET\n".to_owned())
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        match encode(registry, &accept) {
            Ok((body, content_type)) => ("200 OK", content_type, body),
            Err(_) => ("500 Internal Server Error", "text/plain", "encoding failed\n".to_owned()),
        }
    } else {
        ("404 Not Found", "text/plain", "joules serves /metrics\n".to_owned())
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
