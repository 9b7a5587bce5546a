//! Facts about the machine and the process, for reports.

use serde::Serialize;

use crate::error::{Error, Result};

/// Reads a `kB` field (such as `VmRSS` or `VmHWM`) of `/proc/self/status`, in bytes.
pub fn proc_status_bytes(field: &'static str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_status_kb(&status, field)
        .map(|kb| kb * 1024)
        .ok_or(Error::MissingProcField(field))
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size of this process (`VmRSS`), in bytes.
pub fn rss_bytes() -> Result<u64> {
    proc_status_bytes("VmRSS")
}

/// CPU time consumed by the calling thread, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time, it does not grow while
/// the thread waits for a CPU that other processes hold.
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and CLOCK_THREAD_CPUTIME_ID is a clock id Linux always accepts.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// Kernel release (`/proc/sys/kernel/osrelease`, as `uname -r`).
    pub kernel: String,
    /// Total memory from `/proc/meminfo`, in bytes.
    pub memory_bytes: u64,
    /// CPU frequency governor of cpu0
    /// (`/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor`), `None`
    /// where the kernel exposes none (most VMs).
    pub governor: Option<String>,
}

impl Machine {
    /// Describes this machine; fields that cannot be read say "unknown" (or 0).
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_status_kb(&s, "MemTotal"))
            .map_or(0, |kb| kb * 1024);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            memory_bytes,
            governor: std::fs::read_to_string(
                "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            )
            .ok()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} x{}, {:.1} GiB, Linux {}, governor {}",
            self.cpu,
            self.cpus,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.kernel,
            self.governor.as_deref().unwrap_or("not exposed")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kb_fields_of_proc_status() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
    }

    #[test]
    fn thread_cpu_time_advances_while_working() {
        let a = thread_cpu_ns().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_ns().unwrap() > a, "{x}");
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(rss_bytes().unwrap() > 0);
    }
}
