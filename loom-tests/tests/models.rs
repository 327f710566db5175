//! Placeholder until the loom models land (issue 4): checks that the
//! model-check crate builds against switchboard and that loom runs here.

#[test]
fn loom_runs_a_model() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    loom::model(|| {
        let n = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&n);
        let t = loom::thread::spawn(move || m.fetch_add(1, Ordering::SeqCst));
        n.fetch_add(1, Ordering::SeqCst);
        t.join().unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
    });
    // The crate under test links.
    let _ = switchboard::EventBus::new(0);
}
