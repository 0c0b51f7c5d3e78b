//! Counters, gauges and histograms with labels, rendered in Prometheus' text format (0.0.4).
//!
//! Small on purpose: lock-free atomics for the hot paths (a request, a read, a write), a mutex
//! only to find a label set's cell, and families whose label values are bounded by the code
//! (route templates, methods, status classes, outcomes), never by what a client sends.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A value that only goes up.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, amount: i64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one thing in progress until the guard is dropped.
    pub fn track(&'static self) -> GaugeGuard {
        self.add(1);
        GaugeGuard(self)
    }
}

pub struct GaugeGuard(&'static Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The Prometheus client libraries' default buckets, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Observations counted into fixed buckets; the sum is kept in microseconds.
pub struct Histogram {
    buckets: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Self {
            buckets,
            counts: buckets.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(index) = self.buckets.iter().position(|bound| seconds <= *bound) {
            self.counts[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

/// A family of cells of type `T`, one per set of label values.
pub struct Family<T, const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    cells: Mutex<BTreeMap<[String; N], Arc<T>>>,
    make: fn() -> T,
}

impl<T, const N: usize> Family<T, N> {
    pub fn new(name: &'static str, help: &'static str, labels: [&'static str; N], make: fn() -> T) -> Self {
        Self { name, help, labels, cells: Mutex::new(BTreeMap::new()), make }
    }

    /// The cell for these label values, made on first use.
    pub fn with(&self, values: [&str; N]) -> Arc<T> {
        let key = values.map(str::to_owned);
        let mut cells = self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(cells.entry(key).or_insert_with(|| Arc::new((self.make)())))
    }

    fn snapshot(&self) -> Vec<([String; N], Arc<T>)> {
        let cells = self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cells.iter().map(|(labels, cell)| (labels.clone(), Arc::clone(cell))).collect()
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> =
        names.iter().zip(values).map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect();
    if let Some((name, value)) = extra {
        pairs.push(format!("{name}=\"{value}\""));
    }
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

fn float(value: f64) -> String {
    if value.is_infinite() { if value > 0.0 { "+Inf".into() } else { "-Inf".into() } } else { format!("{value}") }
}

/// The text exposition being built.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A counter kept as a float elsewhere (CPU seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.text, "{name} {}", float(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {}", float(value));
    }

    /// A gauge whose samples carry labels.
    pub fn gauge_with(&mut self, name: &str, help: &str, labels: &[&str], samples: &[(Vec<String>, f64)]) {
        self.header(name, help, "gauge");
        for (values, value) in samples {
            let _ = writeln!(self.text, "{name}{} {}", label_text(labels, values, None), float(*value));
        }
    }

    pub fn counters<const N: usize>(&mut self, family: &Family<Counter, N>) {
        self.header(family.name, family.help, "counter");
        for (values, cell) in family.snapshot() {
            let _ = writeln!(self.text, "{}{} {}", family.name, label_text(&family.labels, &values, None), cell.get());
        }
    }

    pub fn histograms<const N: usize>(&mut self, family: &Family<Histogram, N>) {
        self.header(family.name, family.help, "histogram");
        let name = family.name;
        for (values, cell) in family.snapshot() {
            let mut cumulative = 0;
            for (bound, count) in cell.buckets.iter().zip(&cell.counts) {
                cumulative += count.load(Ordering::Relaxed);
                let labels = label_text(&family.labels, &values, Some(("le", &float(*bound))));
                let _ = writeln!(self.text, "{name}_bucket{labels} {cumulative}");
            }
            let total = cell.count.load(Ordering::Relaxed);
            let labels = label_text(&family.labels, &values, Some(("le", "+Inf")));
            let _ = writeln!(self.text, "{name}_bucket{labels} {total}");
            let plain = label_text(&family.labels, &values, None);
            let sum = cell.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(self.text, "{name}_sum{plain} {sum}");
            let _ = writeln!(self.text, "{name}_count{plain} {total}");
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// A histogram family with the default buckets.
pub fn histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format_with_escaped_labels_and_cumulative_buckets() {
        let requests: Family<Counter, 2> =
            Family::new("t_requests_total", "Requests.", ["route", "status"], Counter::default);
        requests.with(["/a/:id", "2xx"]).add(3);
        requests.with(["/a/:id", "2xx"]).inc();
        requests.with(["we\"ird\\\n", "5xx"]).inc();
        let durations: Family<Histogram, 1> = Family::new("t_seconds", "Durations.", ["route"], histogram);
        let cell = durations.with(["/a"]);
        cell.observe(0.003);
        cell.observe(0.2);
        cell.observe(60.0);
        let mut out = Exposition::default();
        out.counters(&requests);
        out.histograms(&durations);
        out.gauge("t_free_bytes", "Free.", 12.5);
        let text = out.finish();
        assert!(text.contains("# TYPE t_requests_total counter\n"));
        assert!(text.contains("t_requests_total{route=\"/a/:id\",status=\"2xx\"} 4\n"), "{text}");
        assert!(text.contains(r#"t_requests_total{route="we\"ird\\\n",status="5xx"} 1"#), "{text}");
        assert!(text.contains("t_seconds_bucket{route=\"/a\",le=\"0.005\"} 1\n"));
        assert!(text.contains("t_seconds_bucket{route=\"/a\",le=\"0.25\"} 2\n"));
        assert!(text.contains("t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("t_seconds_count{route=\"/a\"} 3\n"));
        assert!(text.contains("t_free_bytes 12.5\n"));
    }
}
