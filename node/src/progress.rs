//! Progress on long work (a first sync, an import, a big stocktake): a spinner on stderr with
//! what has been done so far, only on a terminal. Piped, redirected or with `--json`, nothing
//! is drawn, so scripts and logs see only the command's own output.

use std::io::IsTerminal;
use std::time::Duration;

/// A spinner that clears itself when dropped; a no-op off a terminal.
#[derive(Debug)]
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// Starts a spinner saying `message`, unless `quiet` or stderr is not a terminal.
    pub fn start(message: impl Into<String>, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.tick();
        Progress(Some(bar))
    }

    /// Says what has been done so far.
    pub fn say(&self, message: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_message(message.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
