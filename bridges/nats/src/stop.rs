//! The bridge's stop signal as each of its tasks waits for it: every wait
//! of a task (for its next message, a server's answer, a retry's timer)
//! races it, the stop first.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

/// One task's wait for the stop, made once for the task's life: a new one
/// per event costs more than the rest of the wait.
pub(crate) struct Stop {
    wait: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// The wait has ended: it is not polled again.
    stopped: bool,
}

impl Stop {
    /// The wait for `stopped` to say stop (or for the bridge to be gone).
    pub(crate) fn new(mut stopped: watch::Receiver<bool>) -> Self {
        Self {
            wait: Box::pin(async move {
                // An error means the bridge is gone: stop too.
                let _ = stopped.wait_for(|stop| *stop).await;
            }),
            stopped: false,
        }
    }

    /// Waits until the bridge is told to stop; at once if it was.
    pub(crate) async fn requested(&mut self) {
        if !self.stopped {
            (&mut self.wait).await;
            self.stopped = true;
        }
    }

    /// What `future` gives, or `None` if the bridge is told to stop first.
    pub(crate) async fn or<F: IntoFuture>(&mut self, future: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.requested() => None,
            output = future => Some(output),
        }
    }

    /// The next item of `stream` (`Some(None)` once it ended), or `None` if
    /// the bridge is told to stop first.
    pub(crate) async fn next<S: Stream + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Option<Option<S::Item>> {
        self.or(stream.next()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stop_comes_first_and_stays() {
        let (stop, stopped) = watch::channel(false);
        let mut waiting = Stop::new(stopped);
        let mut items = futures_util::stream::iter([1, 2]);
        assert_eq!(waiting.next(&mut items).await, Some(Some(1)));
        stop.send_replace(true);
        assert_eq!(
            waiting.next(&mut items).await,
            None,
            "the stop before the item ready"
        );
        assert_eq!(
            waiting.or(async { 3 }).await,
            None,
            "and for every wait after it"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_is_told_from_the_stop() {
        let (_stop, stopped) = watch::channel(false);
        let mut waiting = Stop::new(stopped);
        let mut items = futures_util::stream::iter([1]);
        assert_eq!(waiting.next(&mut items).await, Some(Some(1)));
        assert_eq!(waiting.next(&mut items).await, Some(None));
    }

    #[tokio::test]
    async fn a_bridge_gone_is_a_stop() {
        let (stop, stopped) = watch::channel(false);
        let mut waiting = Stop::new(stopped);
        drop(stop);
        assert_eq!(waiting.or(std::future::pending::<()>()).await, None);
    }
}
