//! Progress of long steps on a terminal: one line on standard error, redrawn a few times a
//! second, only when standard error is a terminal (never in logs or the journal).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    shown: Option<Instant>,
    terminal: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self { label: label.into(), total, done: 0, shown: None, terminal: std::io::stderr().is_terminal() }
    }

    pub fn advance(&mut self, by: u64) {
        self.done += by;
        if self.terminal && self.shown.is_none_or(|at| at.elapsed() >= REDRAW_EVERY) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{}: {}/{} ({percent}%)\x1b[K", self.label, self.done, self.total);
        let _ = stderr.flush();
        self.shown = Some(Instant::now());
    }

    /// Draws the final count and ends the line.
    pub fn finish(mut self) {
        if self.terminal && self.shown.is_some() {
            self.draw();
            eprintln!();
        }
    }
}
