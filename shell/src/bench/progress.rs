//! Progress of a long bench step on stderr: an indicatif bar when stderr is
//! a terminal, otherwise a plain line at every tenth (logs and CI output stay
//! readable and short).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One step's progress towards a known total. Shared by the tasks doing the
/// step (`&self` everywhere); positions may come in any order.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    /// Highest position reported so far (for the plain lines).
    seen: AtomicU64,
}

impl Progress {
    /// A bar or plain lines, by whether stderr is a terminal.
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self::with_terminal(label, total, std::io::stderr().is_terminal())
    }

    fn with_terminal(label: impl Into<String>, total: u64, terminal: bool) -> Self {
        let label = label.into();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "ff bench: {msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.clone());
            bar
        });
        Self {
            bar,
            label,
            total,
            seen: AtomicU64::new(0),
        }
    }

    /// `done` of the total are finished.
    pub fn set(&self, done: u64) {
        let before = self.seen.fetch_max(done, Relaxed);
        if done <= before {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if let Some(line) = self.line(before, done) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The plain line for moving from `before` to `done`, if it crossed a tenth.
    fn line(&self, before: u64, done: u64) -> Option<String> {
        let step = (self.total / 10).max(1);
        (done / step > before / step)
            .then(|| format!("ff bench:   {} {done}/{}", self.label, self.total))
    }

    /// Leave the bar drawn at its last position.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_once_per_tenth_crossed() {
        let p = Progress::with_terminal("created", 100, false);
        assert_eq!(p.line(0, 9), None);
        assert_eq!(p.line(9, 10).as_deref(), Some("ff bench:   created 10/100"));
        assert_eq!(p.line(10, 19), None);
        assert!(p.line(19, 35).is_some());
        let tiny = Progress::with_terminal("created", 3, false);
        assert!(tiny.line(0, 1).is_some());
        p.set(50);
        p.set(20);
        assert_eq!(p.seen.load(Relaxed), 50, "positions only move forward");
    }
}
