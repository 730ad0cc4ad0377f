//! Progress bars for uploads, on a terminal only.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ubuntu_ci_core::submit::{NoProgress, SharedProgress, SubmitProgress};

/// Progress bars per uploaded file on stderr when it is a terminal; nothing otherwise.
pub fn for_terminal(quiet: bool) -> SharedProgress {
    if quiet || crate::output::quiet() || !std::io::stderr().is_terminal() {
        return Arc::new(NoProgress);
    }
    Arc::new(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        bars: Mutex::new(HashMap::new()),
    })
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl SubmitProgress for Bars {
    fn validating(&self, changes: &std::path::Path) {
        let _ = self
            .multi
            .println(format!("checking {}", changes.display()));
    }

    fn upload_started(&self, name: &str, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template(
            "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(name.to_owned());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(name.to_owned(), bar);
        }
    }

    fn upload_progress(&self, name: &str, bytes: u64) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(name) {
                bar.set_position(bytes);
            }
        }
    }

    fn upload_finished(&self, name: &str, _url: &str) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(name) {
                bar.finish();
            }
        }
    }
}
