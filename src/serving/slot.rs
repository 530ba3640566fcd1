//! A connection's place: under the cap, or in the small reserve past it that keeps the probes
//! answerable.
//!
//! Past the cap a new connection used to wait in the listen backlog until a slot freed, so idle
//! clients holding every slot made `/health` time out, and an orchestrator restart a replica that
//! was only busy. Now up to [`RESERVE`] connections past the cap are accepted into the reserve:
//! `/health` and `/readyz` are answered there at once; any other request waits up to
//! [`RESERVE_WAIT`] for a slot under the cap and then carries on as an ordinary connection, or is
//! told `503 TooManyConnections` with `Retry-After`. A reserve connection must send its request
//! head within [`RESERVE_HEAD_TIMEOUT`], and closes after a probe's answer, so idle clients cannot
//! hold the reserve for long. Beyond the reserve, connections wait in the backlog as before.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections accepted past the cap for probes.
pub(super) const RESERVE: usize = 16;

/// How long a reserve connection may take to send its request head: a probe sends it at once.
pub(super) const RESERVE_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a request other than a probe, on a reserve connection, waits for a slot under the cap.
pub(super) const RESERVE_WAIT: Duration = Duration::from_secs(1);

/// The paths answered on a reserve connection without a slot under the cap.
pub(super) const PROBES: [&str; 2] = ["/health", "/readyz"];

/// The two pools of places.
#[derive(Clone)]
pub(super) struct Slots {
    pub(super) main: Arc<Semaphore>,
    pub(super) reserve: Arc<Semaphore>,
}

impl Slots {
    pub(super) fn new(cap: usize) -> Self {
        Slots { main: Arc::new(Semaphore::new(cap)), reserve: Arc::new(Semaphore::new(RESERVE)) }
    }
}

/// One connection's place, held until the connection ends.
pub(super) struct Slot {
    permit: Mutex<OwnedSemaphorePermit>,
    in_reserve: AtomicBool,
    main: Arc<Semaphore>,
}

impl Slot {
    pub(super) fn new(permit: OwnedSemaphorePermit, in_reserve: bool, slots: &Slots) -> Arc<Self> {
        Arc::new(Slot { permit: Mutex::new(permit), in_reserve: AtomicBool::new(in_reserve), main: slots.main.clone() })
    }

    pub(super) fn in_reserve(&self) -> bool {
        self.in_reserve.load(Relaxed)
    }

    /// Waits up to [`RESERVE_WAIT`] for a place under the cap and moves there, freeing the reserve
    /// place; false when none freed in time.
    pub(super) async fn move_under_cap(&self) -> bool {
        let Ok(Ok(permit)) = tokio::time::timeout(RESERVE_WAIT, self.main.clone().acquire_owned()).await else {
            return false;
        };
        // Replacing the permit drops the reserve one. A poisoned lock only means another thread
        // panicked while swapping: the permit inside is still one to hold.
        let mut held = self.permit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = permit;
        self.in_reserve.store(false, Relaxed);
        true
    }
}
