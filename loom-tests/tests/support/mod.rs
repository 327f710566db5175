//! What every model file shares.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Runs `f` under loom and prints how many interleavings it explored.
pub fn model<F: Fn() + Sync + Send + 'static>(name: &str, f: F) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom model {name}: {} interleavings explored",
        runs.load(Ordering::Relaxed)
    );
}
