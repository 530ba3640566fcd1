//! Each process's webhook sender: claims due deliveries from the jobs database (any replica's
//! deliveries, as workers claim any job), sends them, records every attempt and schedules the
//! next one.
//!
//! An attempt is a POST of the stored body with the Standard Webhooks headers, signed when it is
//! sent (so a rotated secret signs the retries too). Only a 2xx is delivered. A 410 Gone stops the
//! delivery. Anything else (another status, a redirect, which is never followed, no answer within
//! 10 s, a refused connection) is retried on the schedule ([`super::SCHEDULE`]). The claim's lease
//! outlasts an attempt's timeout, so a lease runs out only when its sender died; another sender
//! then makes the attempt again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::target::Reach;
use crate::jobs::Jobs;
use crate::jobs::store::deliveries::{Attempted, DueDelivery, Next};
use crate::jobs::store::{Store, now_ms};

/// One attempt's whole time: connect, send, and the answer's status line (the spec's 15 s is an
/// upper bound; receivers are told to answer at once and work later).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a claim is held: past the attempt's timeout, and the recording after it, with room.
const LEASE: Duration = Duration::from_secs(30);

/// Attempts in flight at once per process: one slow receiver must not hold up the others.
const IN_FLIGHT: usize = 16;

/// How often an idle sender looks for due deliveries without a wake-up (another process on the
/// same SQLite file writes without telling this one).
const POLL: Duration = Duration::from_secs(1);

/// What one process sends with.
struct Sender {
    store: Store,
    client: reqwest::Client,
    settings: Settings,
    /// This process's claims are `{process}/{n}`.
    process: String,
}

/// Starts the sender, unless webhooks are off (no secret: nothing can have been queued by this
/// build's submit path, and nothing could be signed). It stops at `shutdown`, leaving what it had
/// not sent to the next sender; an attempt cut mid-way is made again once its lease runs out.
pub fn start(
    jobs: &Arc<Jobs>,
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    if settings.secret.is_none() {
        return Ok(None);
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("mvgen/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
        .timeout(ATTEMPT_TIMEOUT)
        // A redirect would send the signed body somewhere the submit check never saw.
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Reach { allow_private: settings.allow_private })
        // Through a proxy the proxy would resolve the target, past the address check above.
        .no_proxy()
        .tls_backend_preconfigured(crate::tls::client_config()?)
        .build()
        .map_err(|e| format!("cannot set up the webhook HTTP client: {e}"))?;
    let sender = Arc::new(Sender {
        store: jobs.store().clone(),
        client,
        settings: settings.clone(),
        process: uuid::Uuid::new_v4().simple().to_string(),
    });
    let wake = jobs.subscribe();
    tracing::info!(process = %sender.process, "webhook sender started");
    Ok(Some(crate::background::spawn_task(sender.run(wake, shutdown))))
}

impl Sender {
    async fn run(self: Arc<Self>, mut wake: tokio::sync::broadcast::Receiver<String>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let freed = Arc::new(tokio::sync::Notify::new());
        let mut n = 0u64;
        while !shutdown.is_cancelled() {
            // Claims are writes (SQLite's one writer): made only when a read says one is due.
            let due = match self.store.next_delivery_due().await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook sender cannot read deliveries; retrying");
                    None
                }
            };
            // Claim while there is room; each claim is one attempt, sent on its own task.
            while due.is_some_and(|due| due <= now_ms())
                && let Ok(slot) = slots.clone().try_acquire_owned()
            {
                n += 1;
                let claim = format!("{}/{n}", self.process);
                match self.store.claim_delivery(&claim, LEASE.as_millis() as i64).await {
                    Ok(Some(delivery)) => {
                        let (sender, freed) = (self.clone(), freed.clone());
                        crate::background::spawn_task(async move {
                            sender.attempt(delivery).await;
                            drop(slot);
                            freed.notify_one();
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook sender cannot claim deliveries; retrying");
                        break;
                    }
                }
            }
            // Until the next one is due (a claimed one: its lease), at most a poll; the claims
            // above took what was due, so a due time still past is another sender's claim.
            let pause = match due {
                Some(due) if slots.available_permits() > 0 => {
                    Duration::from_millis((due - now_ms()).clamp(20, POLL.as_millis() as i64) as u64)
                }
                _ => POLL,
            };
            // Any job's news may be a new delivery (the end of a job, here or on another replica).
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
                _ = wake.recv() => {}
                _ = freed.notified() => {}
            }
            // The news that queued up meanwhile is seen by the next read, not a read each (a burst
            // of job events was as many reads of the deliveries, each finding the same).
            crate::jobs::Jobs::skip_queued(&mut wake);
        }
    }

    /// One attempt of `delivery`, recorded with what follows it.
    async fn attempt(&self, delivery: DueDelivery) {
        let at = now_ms();
        let timestamp = at / 1000;
        let body = delivery.body.as_bytes();
        let signature = super::signature::header(&self.settings.secrets(), &delivery.id, timestamp, body);
        let started = Instant::now();
        let reach = Reach { allow_private: self.settings.allow_private };
        let sent = match reach.check_literal(&delivery.url) {
            Err(refused) => Err(refused),
            Ok(()) => self
                .client
                .post(&delivery.url)
                .header("content-type", "application/json")
                .header("webhook-id", &delivery.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(delivery.body.clone())
                .send()
                .await
                .map(|answer| answer.status().as_u16())
                .map_err(|e| crate::providers::upstream_error::describe(&e)),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let attempt = delivery.attempts as usize + 1;
        let (code, error) = match &sent {
            Ok(code) => (Some(*code), None),
            Err(e) => (None, Some(e.as_str())),
        };
        let next = match code {
            Some(200..=299) => Next::Delivered,
            Some(410) => Next::Gone,
            _ => match self.settings.wait_before(attempt + 1) {
                Some(wait) => Next::RetryAt(now_ms() + wait.as_millis() as i64),
                None => Next::GaveUp,
            },
        };
        let recorded = Attempted { at, duration_ms, code, error, next };
        match self.store.record_attempt(&delivery, &recorded).await {
            Ok(true) => tracing::info!(
                job = %delivery.job_id, delivery = %delivery.id, event = %delivery.event, attempt,
                code = ?code, error = error.unwrap_or(""), next = ?next, "webhook attempt"
            ),
            Ok(false) => tracing::warn!(
                job = %delivery.job_id, delivery = %delivery.id, attempt,
                "webhook attempt outlasted its claim; another sender owns the delivery now"
            ),
            // The claim stays until its lease runs out; then the attempt is made again.
            Err(e) => tracing::warn!(
                job = %delivery.job_id, delivery = %delivery.id, attempt, error = %e,
                "cannot record a webhook attempt; it will be made again"
            ),
        }
    }
}
