//! Progress of the long commands (`ff bench`, `ff demo`) on stderr: an
//! indicatif bar when stderr is a terminal, otherwise plain lines (logs and
//! CI output stay readable and short).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A bar on stderr with `prefix` and a message, or `None` when stderr is not
/// a terminal.
pub(crate) fn terminal_bar(prefix: &str, total: u64) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| bar(prefix, total))
}

fn bar(prefix: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{prefix}: {{msg}} [{{bar:40}}] {{pos}}/{{len}} eta {{eta}}");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// One step's progress towards a known total, a plain line per tenth when
/// stderr is not a terminal. Shared by the tasks doing the step (`&self`
/// everywhere); positions may come in any order.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    prefix: &'static str,
    label: String,
    total: u64,
    /// Highest position reported so far (for the plain lines).
    seen: AtomicU64,
}

impl Progress {
    /// A bar or plain lines, by whether stderr is a terminal.
    pub(crate) fn new(prefix: &'static str, label: impl Into<String>, total: u64) -> Self {
        Self::with_terminal(prefix, label, total, std::io::stderr().is_terminal())
    }

    fn with_terminal(
        prefix: &'static str,
        label: impl Into<String>,
        total: u64,
        terminal: bool,
    ) -> Self {
        let label = label.into();
        let bar = terminal.then(|| {
            let bar = bar(prefix, total);
            bar.set_message(label.clone());
            bar
        });
        Self {
            bar,
            prefix,
            label,
            total,
            seen: AtomicU64::new(0),
        }
    }

    /// `done` of the total are finished.
    pub(crate) fn set(&self, done: u64) {
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
            .then(|| format!("{}:   {} {done}/{}", self.prefix, self.label, self.total))
    }

    /// Leave the bar drawn at its last position.
    pub(crate) fn finish(&self) {
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
        let p = Progress::with_terminal("ff bench", "created", 100, false);
        assert_eq!(p.line(0, 9), None);
        assert_eq!(p.line(9, 10).as_deref(), Some("ff bench:   created 10/100"));
        assert_eq!(p.line(10, 19), None);
        assert!(p.line(19, 35).is_some());
        let tiny = Progress::with_terminal("ff bench", "created", 3, false);
        assert!(tiny.line(0, 1).is_some());
        p.set(50);
        p.set(20);
        assert_eq!(p.seen.load(Relaxed), 50, "positions only move forward");
    }
}
