//! SIGTERM and SIGINT as a stream: the first starts the drain, a second one cuts it short.

use tokio::sync::mpsc;

/// Forwards every SIGTERM and SIGINT (by name) until the receiver is dropped.
pub fn listen() -> mpsc::UnboundedReceiver<&'static str> {
    let (tx, rx) = mpsc::unbounded_channel();
    crate::background::spawn_task(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                tracing::warn!("cannot listen for SIGTERM/SIGINT: shutdown will not drain");
                return;
            };
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                if tx.send(name).is_err() {
                    return;
                }
            }
        }
        #[cfg(not(unix))]
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send("Ctrl-C").is_err() {
                return;
            }
        }
    });
    rx
}

/// A receiver fed once by `shutdown` resolving (for callers with a single shutdown future).
pub fn from_future(shutdown: impl Future<Output = ()> + Send + 'static) -> mpsc::UnboundedReceiver<&'static str> {
    let (tx, rx) = mpsc::unbounded_channel();
    crate::background::spawn_task(async move {
        shutdown.await;
        let _ = tx.send("shutdown");
    });
    rx
}

/// The next signal; never resolves once no sender is left.
pub(super) async fn next(signals: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    match signals.recv().await {
        Some(name) => name,
        None => std::future::pending().await,
    }
}
