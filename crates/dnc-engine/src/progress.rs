//! The training progress bar: stage, step/total, epoch, loss, lr, images/s and ETA on stderr,
//! hidden when stderr is not a terminal or when asked to be quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

const TEMPLATE: &str =
    "{prefix} [{bar:30}] {pos}/{len} steps, {msg} [{elapsed_precise} < {eta_precise}]";

/// A progress bar over the steps of one `fit` call.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `total_steps`; hidden when `quiet` or when stderr is not a terminal.
    pub(crate) fn new(stage: &str, total_steps: usize, quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total_steps as u64)
        };
        let style = ProgressStyle::with_template(TEMPLATE)
            .expect("valid progress template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(stage.to_string());
        Self { bar }
    }

    /// Starts counting at `done` steps (a resumed run), so that the ETA covers only new steps.
    pub(crate) fn start_at(&self, done: usize) {
        self.bar.set_position(done as u64);
        self.bar.reset_eta();
        self.bar.reset_elapsed();
    }

    /// Moves the bar to `done` steps and shows the latest figures.
    pub(crate) fn update(
        &self,
        done: usize,
        epoch: usize,
        epochs: usize,
        loss: f64,
        lr: f64,
        images_per_s: f64,
    ) {
        self.bar.set_position(done as u64);
        self.bar.set_message(format!(
            "epoch {}/{epochs}, loss {loss:.4}, lr {lr:.4e}, {images_per_s:.0} img/s",
            epoch + 1
        ));
    }

    /// Leaves the bar drawn as it is.
    pub(crate) fn finish(&self) {
        self.bar.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bars_are_hidden_and_track_position() {
        let p = Progress::new("base", 10, true);
        p.start_at(4);
        assert_eq!(p.bar.position(), 4);
        assert!(p.bar.is_hidden());
        p.update(5, 0, 2, 1.0, 0.1, 100.0);
        assert_eq!(p.bar.position(), 5);
        assert!(p.bar.message().starts_with("epoch 1/2, loss 1.0000"));
        p.finish();
    }
}
