//! joules' end-to-end tests: one binary, one module per area.

// RAPL powercap against a fake sysfs tree: wraps, subzones, malformed trees.
mod powercap;
// The simulated source: attribution against known ground truth.
mod sim;
// Attribution conserves energy on random span trees (proptest).
mod conservation;
// Spans: idle guards, async fns, threads, generic fns and methods.
mod spans;
// Reports: atomic writes, refusing damaged and foreign files.
mod report;
