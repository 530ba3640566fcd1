//! Cancelling a paid upstream job: [`CancelOnDrop`] sends the cancel when the call holding a run
//! goes away without finishing it, and [`send_cancel`] cancels a saved run by request. Neither
//! retries; a drop can't await, so its cancel goes out on a background task shutdown waits for.

use reqwest::RequestBuilder;

use super::upstream_error::describe;
use super::{ProviderError, RunContext};

/// Sends a prepared cancel request when dropped, unless disarmed or its run context says the run
/// outlives the call. Armed while a paid upstream job runs, it covers polling errors and requests
/// dropped by their client (a closed connection drops the handler's future), which would otherwise
/// leave the job running and billing. A durable job's worker that shuts down drops its calls too,
/// but another worker resumes their runs: [`RunContext::cancel_on_drop`] decides, at drop time.
pub struct CancelOnDrop<'a> {
    provider: &'static str,
    /// `None` once disarmed.
    cancel: Option<RequestBuilder>,
    ctx: RunContext<'a>,
}

impl<'a> CancelOnDrop<'a> {
    /// `cancel` should carry its own (short) timeout: nobody waits for it.
    pub fn new(provider: &'static str, cancel: RequestBuilder, ctx: RunContext<'a>) -> Self {
        CancelOnDrop { provider, cancel: Some(cancel), ctx }
    }

    /// The job ended or was cancelled otherwise: nothing to do on drop.
    pub fn disarm(mut self) {
        self.cancel = None;
    }
}

/// Sends the cancel of a saved run (`request`, from the provider's `cancel_request`) and says how
/// it went, for a caller that wants to know (a job cancelled while no call held its run).
pub async fn send_cancel(provider: &'static str, request: RequestBuilder) -> Result<(), ProviderError> {
    let response = request.send().await.map_err(|e| ProviderError::Unreachable { provider, message: describe(&e) })?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(ProviderError::Upstream { provider, status: status.as_u16(), message: "cancel refused".into() }),
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(cancel) = self.cancel.take() else { return };
        let provider = self.provider;
        if !self.ctx.cancel_on_drop() {
            tracing::info!(provider, "left an upstream job running for whoever resumes it");
            return;
        }
        // Drop can't await: the cancel goes out on its own task, which shutdown waits for (a drain
        // that cuts requests drops them here, and the prediction must not run on, billing).
        crate::background::spawn(async move {
            match cancel.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(provider, "cancelled an abandoned upstream job");
                }
                Ok(response) => {
                    tracing::warn!(provider, status = response.status().as_u16(), "cancel of an abandoned job refused");
                }
                Err(err) => tracing::warn!(provider, error = %describe(&err), "cancel of an abandoned job failed"),
            }
        });
    }
}
