//! A fake `libnvidia-ml.so`. nvml-wrapper loads it by path like the real one and calls the
//! symbols below; nothing in nvml-wrapper or joules is replaced. Scripted at `nvmlInit_v2` by:
//!
//! - `FAKE_NVML_GPUS`: how many GPUs (default 1);
//! - `FAKE_NVML_WATTS`: each GPU's mean power, comma-separated (default 250); the power ripples
//!   +/-10% with a 200 ms period, so integrating it needs real sampling;
//! - `FAKE_NVML_ENERGY`: `0` makes the energy counter NOT_SUPPORTED (pre-Volta);
//! - `FAKE_NVML_INSTANT`: `0` makes the instant power field NOT_SUPPORTED;
//! - `FAKE_NVML_LOST_AFTER_MS`: GPU 0 returns GPU_IS_LOST from then on (and the next ones
//!   too, up to `FAKE_NVML_LOST_GPUS` of them, default 1: all at once);
//! - `FAKE_NVML_UPDATE_MS`: how often the energy counter and power readings change (default 20);
//! - `FAKE_NVML_INIT_ERROR`: `nvmlInit_v2` fails with this return code (9: driver not loaded,
//!   4: no permission).
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong};
use std::sync::OnceLock;
use std::time::Instant;

const SUCCESS: c_uint = 0;
const INVALID_ARGUMENT: c_uint = 2;
const NOT_SUPPORTED: c_uint = 3;
const INSUFFICIENT_SIZE: c_uint = 7;
const GPU_IS_LOST: c_uint = 15;
const FI_DEV_POWER_INSTANT: c_uint = 186;
const VALUE_TYPE_UNSIGNED_INT: c_uint = 1;

struct Script {
    start: Instant,
    watts: Vec<f64>,
    energy: bool,
    instant: bool,
    lost_after_ms: Option<u64>,
    lost_gpus: usize,
    update_ms: u64,
}

static SCRIPT: OnceLock<Script> = OnceLock::new();

fn env_num(key: &str) -> Option<f64> {
    std::env::var(key).ok()?.trim().parse().ok()
}

fn script() -> &'static Script {
    SCRIPT.get_or_init(|| {
        let gpus = env_num("FAKE_NVML_GPUS").unwrap_or(1.0) as usize;
        let listed: Vec<f64> = std::env::var("FAKE_NVML_WATTS")
            .unwrap_or_else(|_| "250".into())
            .split(',')
            .filter_map(|w| w.trim().parse().ok())
            .collect();
        let watts = (0..gpus).map(|i| *listed.get(i).or(listed.last()).unwrap_or(&250.0)).collect();
        Script {
            start: Instant::now(),
            watts,
            energy: std::env::var("FAKE_NVML_ENERGY").map_or(true, |v| v != "0"),
            instant: std::env::var("FAKE_NVML_INSTANT").map_or(true, |v| v != "0"),
            lost_after_ms: env_num("FAKE_NVML_LOST_AFTER_MS").map(|v| v as u64),
            lost_gpus: env_num("FAKE_NVML_LOST_GPUS").unwrap_or(1.0) as usize,
            update_ms: env_num("FAKE_NVML_UPDATE_MS").unwrap_or(20.0).max(1.0) as u64,
        }
    })
}

/// Device handles are 1-based indices dressed as pointers.
fn index(device: *mut u8) -> Option<usize> {
    let i = (device as usize).checked_sub(1)?;
    (i < script().watts.len()).then_some(i)
}

/// Seconds since init, rounded down to the last update.
fn updated_at() -> f64 {
    let s = script();
    let ms = s.start.elapsed().as_millis() as u64;
    (ms / s.update_ms * s.update_ms) as f64 / 1000.0
}

fn lost(i: usize) -> bool {
    let s = script();
    i < s.lost_gpus && s.lost_after_ms.is_some_and(|ms| s.start.elapsed().as_millis() as u64 >= ms)
}

/// Power at time t: mean x (1 + 0.1 sin(2 pi t / 0.2 s)).
fn power(i: usize, t: f64) -> f64 {
    script().watts[i] * (1.0 + 0.1 * (std::f64::consts::TAU * t / 0.2).sin())
}

/// Energy in joules from init to t: the integral of `power`.
fn energy(i: usize, t: f64) -> f64 {
    let w = script().watts[i];
    w * t - w * 0.1 * 0.2 / std::f64::consts::TAU * ((std::f64::consts::TAU * t / 0.2).cos() - 1.0)
}

unsafe fn write_str(s: &str, buf: *mut c_char, len: c_uint) -> c_uint {
    if buf.is_null() || s.len() + 1 > len as usize {
        return INSUFFICIENT_SIZE;
    }
    // SAFETY: the caller gave `len` writable bytes, and we write at most s.len() + 1.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> c_uint {
    if let Some(code) = env_num("FAKE_NVML_INIT_ERROR") {
        return code as c_uint;
    }
    script();
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> c_uint {
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> c_uint {
    // SAFETY: forwarded from the caller.
    unsafe { write_str("550.54.15-fake", buf, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> c_uint {
    // SAFETY: nvml-wrapper passes a valid pointer.
    unsafe { *count = script().watts.len() as c_uint };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(i: c_uint, device: *mut *mut u8) -> c_uint {
    if i as usize >= script().watts.len() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: nvml-wrapper passes a valid pointer.
    unsafe { *device = (i as usize + 1) as *mut u8 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(device: *mut u8, buf: *mut c_char, len: c_uint) -> c_uint {
    let Some(i) = index(device) else { return INVALID_ARGUMENT };
    // SAFETY: forwarded from the caller.
    unsafe { write_str(&format!("Fake NVIDIA A100-SXM4-40GB #{i}"), buf, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(device: *mut u8, buf: *mut c_char, len: c_uint) -> c_uint {
    let Some(i) = index(device) else { return INVALID_ARGUMENT };
    // SAFETY: forwarded from the caller.
    unsafe { write_str(&format!("GPU-00000000-fake-4000-8000-00000000000{i}"), buf, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: *mut u8,
    mj: *mut c_ulonglong,
) -> c_uint {
    let Some(i) = index(device) else { return INVALID_ARGUMENT };
    if lost(i) {
        return GPU_IS_LOST;
    }
    if !script().energy {
        return NOT_SUPPORTED;
    }
    // Millijoules since the driver loaded (an arbitrary earlier start).
    // SAFETY: nvml-wrapper passes a valid pointer.
    unsafe { *mj = 7_000_000 + (energy(i, updated_at()) * 1000.0) as c_ulonglong };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: *mut u8, mw: *mut c_uint) -> c_uint {
    let Some(i) = index(device) else { return INVALID_ARGUMENT };
    if lost(i) {
        return GPU_IS_LOST;
    }
    // A one-second average, as on Ampere and newer.
    let t = updated_at();
    let avg = if t >= 1.0 { energy(i, t) - energy(i, t - 1.0) } else { script().watts[i] };
    // SAFETY: nvml-wrapper passes a valid pointer.
    unsafe { *mw = (avg * 1000.0) as c_uint };
    SUCCESS
}

/// `nvmlFieldValue_t`, as nvml-wrapper-sys lays it out.
#[repr(C)]
pub struct FieldValue {
    field_id: c_uint,
    scope_id: c_uint,
    timestamp: i64,
    latency_usec: i64,
    value_type: c_uint,
    nvml_return: c_uint,
    value: u64,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: *mut u8,
    count: c_int,
    values: *mut FieldValue,
) -> c_uint {
    let Some(i) = index(device) else { return INVALID_ARGUMENT };
    if lost(i) {
        return GPU_IS_LOST;
    }
    for k in 0..count.max(0) as usize {
        // SAFETY: nvml-wrapper passes `count` initialised values.
        let v = unsafe { &mut *values.add(k) };
        if v.field_id == FI_DEV_POWER_INSTANT && script().instant {
            v.value_type = VALUE_TYPE_UNSIGNED_INT;
            v.nvml_return = SUCCESS;
            v.value = (power(i, updated_at()) * 1000.0) as u64;
        } else {
            v.nvml_return = NOT_SUPPORTED;
        }
    }
    SUCCESS
}
