//! A live profile's totals as OpenTelemetry metrics (feature `otel`), through the
//! `opentelemetry` crate's observable instruments: the SDK collects them on its own schedule
//! and exports them wherever it is set up to (OTLP with feature `otlp`, see
//! [`otlp_meter_provider`]).
//!
//! The same figures as [`crate::prometheus`], named as OpenTelemetry's conventions ask
//! (dotted names, UCUM units), cumulative and monotonic:
//!
//! | instrument | kind | unit | attributes |
//! |---|---|---|---|
//! | `joules.span.exclusive_energy` | counter | `J` | `span`, `domain` |
//! | `joules.span.inclusive_energy` | counter | `J` | `span`, `domain` |
//! | `joules.span.calls` | counter | `{call}` | `span` |
//! | `joules.domain.energy` | counter | `J` | `domain`, `source` |
//! | `joules.domain.unattributed_energy` | counter | `J` | `domain`, `source` |
//! | `joules.profiled_time` | counter | `s` | |
//! | `joules.domain.up` | gauge | `1` | `domain`, `source` |
//! | `joules.domain.estimated` | gauge | `1` | `domain`, `source` |

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};

use crate::live::{Live, Totals};

/// The instruments registered by [`register`]. The SDK keeps calling them as long as its
/// meter provider lives; dropping this does not stop it.
#[derive(Debug)]
pub struct Instruments {
    /// The energy counters.
    pub energy: Vec<ObservableCounter<f64>>,
    /// The calls counter.
    pub calls: ObservableCounter<u64>,
    /// The health gauges.
    pub health: Vec<ObservableGauge<i64>>,
}

/// Registers on `meter` observable instruments that report `live`'s totals at every
/// collection.
pub fn register(meter: &Meter, live: &Live) -> Instruments {
    let mut energy = Vec::new();
    type Pick = fn(&Totals) -> Vec<(f64, Vec<KeyValue>)>;
    let counters: [(&'static str, &'static str, &'static str, Pick); 5] = [
        (
            "joules.span.exclusive_energy",
            "J",
            "Energy of a span path as the innermost span, per domain",
            |t| span_energy(t, false),
        ),
        (
            "joules.span.inclusive_energy",
            "J",
            "Energy of a span path with its descendants, per domain",
            |t| span_energy(t, true),
        ),
        ("joules.domain.energy", "J", "Energy an energy domain's counter saw in the profiled time", |t| {
            t.domains.iter().map(|d| (d.energy.0, domain_attrs(d))).collect()
        }),
        ("joules.domain.unattributed_energy", "J", "Energy of a domain while no span ran", |t| {
            t.domains.iter().map(|d| (d.unattributed.0, domain_attrs(d))).collect()
        }),
        ("joules.profiled_time", "s", "Wall time folded into the totals", |t| {
            vec![(t.covered.as_secs_f64(), Vec::new())]
        }),
    ];
    for (name, unit, help, pick) in counters {
        let live = live.clone();
        energy.push(
            meter
                .f64_observable_counter(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |obs| {
                    for (v, attrs) in pick(&live.totals()) {
                        obs.observe(v, &attrs);
                    }
                })
                .build(),
        );
    }
    let calls = {
        let live = live.clone();
        meter
            .u64_observable_counter("joules.span.calls")
            .with_unit("{call}")
            .with_description("Times a span path was entered")
            .with_callback(move |obs| {
                for p in live.totals().paths {
                    obs.observe(p.calls, &[KeyValue::new("span", p.name)]);
                }
            })
            .build()
    };
    let mut health = Vec::new();
    for (name, help, up) in [
        ("joules.domain.up", "1 while a domain is read, 0 once it stopped (a lost GPU, a failed read)", true),
        ("joules.domain.estimated", "1 where no hardware energy counter reads the domain", false),
    ] {
        let live = live.clone();
        health.push(
            meter
                .i64_observable_gauge(name)
                .with_unit("1")
                .with_description(help)
                .with_callback(move |obs| {
                    for d in live.totals().domains {
                        let v = if up { i64::from(d.lost.is_none()) } else { i64::from(!d.measured) };
                        obs.observe(v, &domain_attrs(&d));
                    }
                })
                .build(),
        );
    }
    Instruments { energy, calls, health }
}

fn span_energy(t: &Totals, inclusive: bool) -> Vec<(f64, Vec<KeyValue>)> {
    t.span_energy(inclusive)
        .map(|(span, domain, e)| {
            (e.0, vec![KeyValue::new("span", span.to_owned()), KeyValue::new("domain", domain.to_owned())])
        })
        .collect()
}

fn domain_attrs(d: &crate::live::DomainTotal) -> Vec<KeyValue> {
    vec![KeyValue::new("domain", d.id.clone()), KeyValue::new("source", d.source.name())]
}

/// A meter provider that exports every `interval` over OTLP/HTTP (protobuf) to `endpoint`,
/// e.g. `http://localhost:4318/v1/metrics` (plain HTTP; the path is used as given). Register
/// on a meter of it, and shut it down before the program ends, so the last figures go out.
#[cfg(feature = "otlp")]
pub fn otlp_meter_provider(
    endpoint: &str,
    interval: std::time::Duration,
) -> Result<opentelemetry_sdk::metrics::SdkMeterProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()?;
    let reader =
        opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).with_interval(interval).build();
    Ok(opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build())
}
