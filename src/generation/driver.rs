//! From a request body to a plan, and running a plan: the steps every kind takes, in the same
//! order whoever asked (a sync endpoint, a job, a test), so a job is validated and planned exactly
//! as the sync endpoint is.
//!
//! The chosen flavor is spent here: [`plan_now`] and [`plan_later`] choose it and plan with it, and
//! hand back a [`Planned`] (the kind's plan and the [`FlavorReport`] its answer carries). Nothing
//! after planning sees a `Flavor`.

use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::inputs::optional;
use super::{Body, FlavorReport, Generation, Plan, Run};
use crate::debug_log;
use crate::error::{ApiError, ErrorKind};
use crate::flavor::Chosen;
use crate::limits::bounded_texts;
use crate::providers::RunContext;
use crate::state::AppState;

/// A request of kind `G`, planned: what runs, and which flavor its answer reports.
pub struct Planned<G: Generation> {
    pub plan: PlanOf<G>,
    pub flavor: FlavorReport,
}

/// The plan of kind `G`.
pub type PlanOf<G> = Plan<<G as Generation>::Request, <G as Generation>::Kept>;

/// A sync request's plan: validate, choose the flavor, take a generation slot, plan. The slot is
/// held for as long as the generation runs, whoever runs it.
pub fn plan_now<G: Generation>(
    state: &AppState,
    input: G::Input,
) -> Result<(Planned<G>, OwnedSemaphorePermit), ApiError> {
    let (request, chosen) = validate_and_choose::<G>(state, input)?;
    // Taken once the request is known to be valid: at the cap a bad request still gets its 4xx.
    let slot = state.generations.take()?;
    Ok((plan(state, request, chosen), slot))
}

/// A job's plan: the same steps as [`plan_now`] but no slot, as nothing runs yet.
pub fn plan_later<G: Generation>(state: &AppState, input: G::Input) -> Result<Planned<G>, ApiError> {
    let (request, chosen) = validate_and_choose::<G>(state, input)?;
    Ok(plan(state, request, chosen))
}

/// A project's flavor, pinned (`crate::pinned_flavor`): what a generation for the project is
/// planned with instead of the flavor its body names.
pub struct Pinned {
    pub flavor: crate::flavor::FlavorRef,
    /// Why the flavor the body named was not used, for the answer's `config_flavor.warning`.
    pub warning: Option<String>,
}

/// [`plan_now`] with the project's pinned flavor rather than the one the body names.
pub fn plan_now_pinned<G: Generation>(
    state: &AppState,
    input: G::Input,
    pinned: Pinned,
) -> Result<(Planned<G>, OwnedSemaphorePermit), ApiError> {
    let (request, chosen) = validate_pinned::<G>(input, pinned.flavor)?;
    let slot = state.generations.take()?;
    Ok((with_warning(plan(state, request, chosen), pinned.warning), slot))
}

/// [`plan_later`] with the project's pinned flavor rather than the one the body names.
pub fn plan_later_pinned<G: Generation>(
    state: &AppState,
    input: G::Input,
    pinned: Pinned,
) -> Result<Planned<G>, ApiError> {
    let (request, chosen) = validate_pinned::<G>(input, pinned.flavor)?;
    Ok(with_warning(plan(state, request, chosen), pinned.warning))
}

fn validate_pinned<G: Generation>(input: G::Input, flavor: crate::flavor::FlavorRef) -> Result<(G, Chosen), ApiError> {
    bounded_texts(&input.texts())?;
    let requested = optional(input.config_flavor().map(str::to_owned));
    let request = G::validate(input)?;
    Ok((request, Chosen { flavor, requested, fallback_reason: None }))
}

fn with_warning<G: Generation>(mut planned: Planned<G>, warning: Option<String>) -> Planned<G> {
    planned.flavor.warning = warning;
    planned
}

/// Runs a plan in this task, for its answer.
pub async fn run<G: Generation>(
    state: &AppState,
    planned: &Planned<G>,
    ctx: RunContext<'_>,
) -> Result<G::Answer, ApiError> {
    G::run(&planned.plan, Run { state, flavor: &planned.flavor, ctx }).await
}

/// A body's text fields bounded in length, then its values checked; then the flavor it names,
/// chosen.
fn validate_and_choose<G: Generation>(state: &AppState, input: G::Input) -> Result<(G, Chosen), ApiError> {
    bounded_texts(&input.texts())?;
    let requested = optional(input.config_flavor().map(str::to_owned));
    let request = G::validate(input)?;
    Ok((request, choose_flavor(state, requested.as_deref())?))
}

/// Chooses the request's flavor: logs a fallback, refuses it in strict mode.
fn choose_flavor(state: &AppState, requested: Option<&str>) -> Result<Chosen, ApiError> {
    let chosen = state.flavors.choose(requested);
    if let Some(reason) = &chosen.fallback_reason {
        crate::telemetry::flavor_fallback(state.strict_flavors);
        if state.strict_flavors {
            return Err(ApiError::new(
                ErrorKind::UnknownFlavor,
                reason.clone(),
                json!({ "field": "config_flavor", "available": state.flavors.names() }),
            ));
        }
        tracing::warn!(used = %chosen.flavor.name, "unknown config flavor: {reason}");
    }
    if state.debug {
        debug_log::chosen(&chosen);
    }
    Ok(chosen)
}

/// The plan for the chosen flavor, logged value by value in debug mode. The flavor is spent here.
fn plan<G: Generation>(state: &AppState, request: G, chosen: Chosen) -> Planned<G> {
    let (plan, consumed) = request.plan(&chosen.flavor);
    if state.debug {
        debug_log::plan(&chosen, G::KIND.as_str(), &consumed, G::prompt(&plan.request));
    }
    Planned { plan, flavor: FlavorReport::from(&chosen) }
}
