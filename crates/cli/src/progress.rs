//! A progress bar on stderr for commands longer than a second: shown only when stderr is
//! a terminal and not `--quiet`, redrawn every 200 ms from the command's own counters.

use std::io::IsTerminal as _;
use std::time::Duration;

use crate::Context;

pub struct Bar {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Starts drawing with `template` (indicatif's syntax); `update` sets length,
    /// position and message from the counters before each redraw.
    pub fn start(
        ctx: &Context,
        template: &str,
        mut update: impl FnMut(&indicatif::ProgressBar) + Send + 'static,
    ) -> Self {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        if ctx.quiet || !std::io::stderr().is_terminal() {
            return Bar { stop, task: None };
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let task = tokio::spawn(async move {
            loop {
                update(&bar);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = rx.changed() => break,
                }
            }
            bar.finish_and_clear();
        });
        Bar {
            stop,
            task: Some(task),
        }
    }

    /// Stops drawing and clears the bar.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
