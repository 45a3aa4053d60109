//! NVIDIA GPUs through NVML (nvml-wrapper), one domain per GPU (`gpu:N`).
//!
//! Where the GPU has it (Volta and newer), the total-energy counter (mJ since the driver
//! loaded) is read: a measurement. Elsewhere power is integrated over time, preferring the
//! instantaneous power field (`NVML_FI_DEV_POWER_INSTANT`) to `nvmlDeviceGetPowerUsage`, which
//! is a one-second average on Ampere and newer; such figures are labelled "integrated", since
//! on A100/H100 the driver samples power only part of the time (Yang et al., SC'24). GPU work is
//! asynchronous: a span around a GPU layer means something only if the device is synchronised
//! at its edges (`#[measure_energy(sync = ..)]`).
//!
//! A GPU that is lost or fails mid-run ends its domain at that time with the reason; the other
//! domains go on.

/// Overrides the NVML library's path.
pub const LIB_ENV: &str = "JOULES_NVML_LIB";
/// The library's default name, found by the dynamic loader.
pub const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

#[cfg(feature = "nvml")]
mod real;
#[cfg(feature = "nvml")]
pub use real::{Nvml, probe};

#[cfg(not(feature = "nvml"))]
pub use off::{Nvml, probe};

/// Without the `nvml` feature: no GPU is read, and the probe says why.
#[cfg(not(feature = "nvml"))]
mod off {
    use super::super::{Domain, ProbeError, ReadCtx, ReadError, Source, SourceKind};
    use crate::units::{Joules, Nanos};

    /// No NVML source can exist in this build.
    #[derive(Debug)]
    pub enum Nvml {}

    /// Always refuses: joules was built without NVML.
    pub fn probe(_lib: &std::path::Path) -> Result<Vec<Nvml>, ProbeError> {
        Err(ProbeError::Config(
            "joules was built without its `nvml` feature (enable it to read NVIDIA GPUs)".into(),
        ))
    }

    impl Source for Nvml {
        fn kind(&self) -> SourceKind {
            match *self {}
        }
        fn describe(&self) -> String {
            match *self {}
        }
        fn domains(&self) -> &[Domain] {
            match *self {}
        }
        fn set_update_period(&mut self, _index: usize, _period: Nanos) {
            match *self {}
        }
        fn read(&mut self, _ctx: &ReadCtx, _out: &mut [Joules]) -> Result<(), ReadError> {
            match *self {}
        }
    }
}
