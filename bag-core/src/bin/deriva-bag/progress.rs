//! Progress bars for long operations (index build, full validation).
//!
//! Bars are drawn on stderr only when stderr is a terminal and `--json` is off, so a pipe,
//! a log file or a JSON consumer never sees progress bytes.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const BYTES_TEMPLATE: &str = "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})";
const ITEMS_TEMPLATE: &str = "{msg:>12} [{bar:40}] {pos}/{len} ({eta})";

/// Whether this run may draw progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Decides once per run: bars only on an interactive stderr and never with `--json`.
    pub fn detect(json: bool) -> Self {
        Progress::new(!json && std::io::stderr().is_terminal())
    }

    /// Forces the decision (tests; callers that know better).
    pub fn new(enabled: bool) -> Self {
        Progress { enabled }
    }

    /// Whether bars are drawn.
    pub fn enabled(self) -> bool {
        self.enabled
    }

    /// An item-count bar (rows, files).
    pub fn items(self, message: &'static str, total: u64) -> ProgressBar {
        self.bar(message, total, ITEMS_TEMPLATE)
    }

    /// A byte-count bar that appears on the first [`LazyBar::update`] only.
    pub fn lazy_bytes(self, message: &'static str) -> LazyBar {
        LazyBar::new(self, message, BYTES_TEMPLATE)
    }

    fn bar(self, message: &'static str, total: u64, template: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // The templates are constants; a bad one is a programming error caught by the tests,
        // so fall back to the default style rather than failing the command.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// A bar created on the first progress report, for operations that may have nothing to
/// report: a warm open never builds the index, and a bar drawn before the total is known
/// would flash `0 B/0 B`. Shareable across threads (library callbacks run on workers).
#[derive(Debug)]
pub struct LazyBar {
    progress: Progress,
    message: &'static str,
    template: &'static str,
    bar: OnceLock<ProgressBar>,
}

impl LazyBar {
    fn new(progress: Progress, message: &'static str, template: &'static str) -> Self {
        LazyBar {
            progress,
            message,
            template,
            bar: OnceLock::new(),
        }
    }

    /// Reports `done` of `total` (a no-op when progress is off).
    pub fn update(&self, done: u64, total: u64) {
        if !self.progress.enabled {
            return;
        }
        let bar = self
            .bar
            .get_or_init(|| self.progress.bar(self.message, total, self.template));
        bar.set_length(total);
        bar.set_position(done);
    }

    /// Removes the bar from the terminal, if it was ever drawn.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_never_draws_progress() {
        assert!(!Progress::detect(true).enabled());
    }

    #[test]
    fn disabled_progress_gives_hidden_bars() {
        let p = Progress::new(false);
        assert!(p.items("placing", 10).is_hidden());
    }

    #[test]
    fn lazy_bars_start_on_the_first_update_only_when_enabled() {
        let off = Progress::new(false).lazy_bytes("indexing");
        off.update(5, 10);
        assert!(off.bar.get().is_none());
        let on = Progress::new(true).lazy_bytes("validating");
        assert!(on.bar.get().is_none());
        on.update(5, 10);
        let bar = on.bar.get().unwrap();
        assert_eq!((bar.position(), bar.length()), (5, Some(10)));
        on.finish();
        assert!(bar.is_finished());
    }

    #[test]
    fn bar_templates_are_valid() {
        for template in [BYTES_TEMPLATE, ITEMS_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
