//! The standard `process_*` metrics, read from `/proc/self` at each scrape (Linux only; on
//! other systems they are left out).

use super::Exposition;

/// Clock ticks per second for `/proc` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as f64 } else { 4096.0 }
}

/// The fields of `/proc/self/stat` after the command name, which may itself hold spaces.
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn render(out: &mut Exposition) {
    let Some(fields) = stat_fields() else { return };
    // Fields are numbered from 3 (state) in proc(5); index = number - 3.
    let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<f64>().ok());
    let ticks = ticks_per_second();
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        out.counter_f64(
            "process_cpu_seconds_total",
            "CPU time used, user and system, in seconds.",
            (user + system) / ticks,
        );
    }
    if let Some(pages) = field(24) {
        out.gauge("process_resident_memory_bytes", "Resident memory in bytes.", pages * page_size());
    }
    if let Some(bytes) = field(23) {
        out.gauge("process_virtual_memory_bytes", "Virtual memory in bytes.", bytes);
    }
    if let Some(threads) = field(20) {
        out.gauge("process_threads", "OS threads.", threads);
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        out.gauge("process_start_time_seconds", "When the process started (Unix time).", boot + start / ticks);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.gauge("process_open_fds", "Open file descriptors.", fds.count() as f64);
    }
    if let Some(max) = max_open_files() {
        out.gauge("process_max_fds", "The limit on open file descriptors.", max);
    }
}
