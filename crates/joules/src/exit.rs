//! Exit codes of `cargo joules`, for scripts and CI.

/// Namespace for the exit codes; it has no values.
#[derive(Debug)]
pub enum ExitCodes {}

impl ExitCodes {
    /// Everything ran; no regression.
    pub const OK: u8 = 0;
    /// Bad command line or input (a corrupt report, an unknown bench).
    pub const USAGE: u8 = 2;
    /// A significant energy regression against the baseline.
    pub const REGRESSION: u8 = 4;
    /// The reports compared were taken on different machines or sources.
    pub const INCOMPARABLE: u8 = 5;
    /// No energy source could be opened, not even the estimate.
    pub const NO_SOURCE: u8 = 6;
    /// `doctor`: no energy counter can be read; figures would be estimates.
    pub const NO_COUNTER: u8 = 7;
    /// An energy source failed during the run (a read failed or panicked, a device was
    /// lost, or the sampler stopped): the figures would be incomplete, so no report is
    /// written, nothing is gated and no baseline saved; one line says what stopped and why.
    pub const SOURCE_FAILED: u8 = 8;
    /// The benchmarks did not build.
    pub const BUILD_FAILED: u8 = 101;
    /// `cargo metadata` failed.
    pub const METADATA_FAILED: u8 = 102;
    /// A benchmark binary failed or wrote no report.
    pub const BENCH_FAILED: u8 = 103;

    /// Every code with its name, for docs and tests.
    pub const ALL: [(&'static str, u8); 10] = [
        ("OK", Self::OK),
        ("USAGE", Self::USAGE),
        ("REGRESSION", Self::REGRESSION),
        ("INCOMPARABLE", Self::INCOMPARABLE),
        ("NO_SOURCE", Self::NO_SOURCE),
        ("NO_COUNTER", Self::NO_COUNTER),
        ("SOURCE_FAILED", Self::SOURCE_FAILED),
        ("BUILD_FAILED", Self::BUILD_FAILED),
        ("METADATA_FAILED", Self::METADATA_FAILED),
        ("BENCH_FAILED", Self::BENCH_FAILED),
    ];
}

#[cfg(test)]
mod tests {
    use super::ExitCodes;

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = ExitCodes::ALL.iter().map(|&(_, c)| c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ExitCodes::ALL.len());
    }
}
