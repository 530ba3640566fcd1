//! A generation as the job engine keeps it: planned when submitted, stored as JSON in the jobs
//! database, and run later, perhaps by another replica or another build. This file owns that
//! stored format, and reaches each kind by its [`Kind`].
//!
//! A stored plan also carries the `parameters` its answer will report: a reader of the job
//! (`GET /api/mv/jobs/{id}`) sees them before it runs, and builds before 2026-12-02 require the
//! field when they run a plan (replicas of two builds share one database during a rolling
//! deploy). This build derives them again when it answers and ignores the stored copy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::character::Character;
use super::driver::{self, PlanOf, Planned};
use super::final_cut::FinalCut;
use super::scenes::Scenes;
use super::video::Video;
use super::{FlavorReport, Generation, Kind, Run};
use crate::error::ApiError;
use crate::providers::{BoxFuture, RunContext};
use crate::state::AppState;
use crate::storage::Collection;

/// A validated, planned generation, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    /// The rendered plan: prompt, model, parameters, flavor name and the flavor's content that
    /// matter to the provider. [`run`] takes it back.
    pub plan: Value,
    /// The `config_flavor` report of the sync endpoints (name, hash, fallback, ...).
    pub config_flavor: Value,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
}

/// A stored plan as a reader of its job is shown it. Plans stored by builds up to 3db7cdb carry a
/// video's uploaded reference image inline, in base64 (this build stores it as a file and keeps its
/// id instead): the image is left out of what is shown and its length said instead, so no answer
/// echoes an uploaded file. The stored row keeps it for the run.
pub fn shown(mut plan: Value) -> Value {
    if let Some(image) = plan.pointer_mut("/plan/kept/uploaded_reference").and_then(Value::as_object_mut)
        && let Some(Value::String(inline)) = image.remove("base64")
    {
        image.insert("base64_length".into(), Value::from(inline.len()));
    }
    plan
}

/// Validates `input` as the sync endpoint of `kind` takes it (the same parser, so the same 4xx),
/// chooses the flavor and plans, then stores what it uploaded. No generation slot: nothing runs
/// yet.
pub async fn plan(state: &AppState, kind: Kind, input: Value) -> Result<StoredPlan, ApiError> {
    match kind {
        Kind::Scenes => plan_as::<Scenes>(state, input).await,
        Kind::CharacterReference => plan_as::<Character>(state, input).await,
        Kind::Video => plan_as::<Video>(state, input).await,
        Kind::FinalCut => plan_as::<FinalCut>(state, input).await,
    }
}

/// Runs a stored plan of `kind` and answers as the sync endpoint does.
pub fn run<'a>(
    state: &'a AppState,
    kind: Kind,
    plan: &'a Value,
    ctx: RunContext<'a>,
) -> BoxFuture<'a, Result<Value, ApiError>> {
    match kind {
        Kind::Scenes => run_as::<Scenes>(state, plan, ctx),
        Kind::CharacterReference => run_as::<Character>(state, plan, ctx),
        Kind::Video => run_as::<Video>(state, plan, ctx),
        Kind::FinalCut => run_as::<FinalCut>(state, plan, ctx),
    }
}

/// Writes to the store what job `id`'s answer `output` keeps only in the job's row (a scenes
/// answer's scenes, under the job's id, which its `output_files` name), before the row is purged.
pub async fn keep_output(
    state: &AppState,
    kind: Kind,
    id: &str,
    output: &Value,
) -> Result<(), crate::storage::StorageError> {
    match kind {
        Kind::Scenes => match super::scenes::kept_in_job(id, output) {
            Some(document) => state.storage.put_as(Collection::Scenes, id, "application/json", &document).await,
            None => Ok(()),
        },
        Kind::CharacterReference | Kind::Video | Kind::FinalCut => Ok(()),
    }
}

/// A stored plan: the kind's plan and the flavor it was made with.
#[derive(Serialize, Deserialize)]
struct Stored<P> {
    config_flavor: FlavorReport,
    plan: P,
}

async fn plan_as<G: Generation>(state: &AppState, input: Value) -> Result<StoredPlan, ApiError> {
    // Through bytes, so a job's input meets exactly the sync endpoint's parser and its messages.
    let bytes = serde_json::to_vec(&input).map_err(|e| ApiError::internal(format!("the input: {e}")))?;
    let planned = driver::plan_later::<G>(state, crate::json_body::parse::<G::Input>(&bytes)?)?;
    to_store(state, planned).await
}

/// A kind's plan as the job engine stores it, with the `parameters` older builds read. What the
/// request uploaded is put in the store first, so the plan names it by id.
pub async fn to_store<G: Generation>(state: &AppState, planned: Planned<G>) -> Result<StoredPlan, ApiError> {
    let Planned { mut plan, flavor } = planned;
    G::check_inputs(&plan, state).await?;
    G::store_uploads(&mut plan, state).await?;
    serialise(Planned::<G> { plan, flavor })
}

/// A planned generation as JSON, with the `parameters` older builds read.
fn serialise<G: Generation>(planned: Planned<G>) -> Result<StoredPlan, ApiError> {
    let Planned { plan, flavor } = planned;
    let (project_id, sequence) = G::project(&plan);
    let unserialisable = |e: serde_json::Error| ApiError::internal(format!("the plan could not be serialised: {e}"));
    let parameters = serde_json::to_value(G::parameters(&plan)).map_err(unserialisable)?;
    let stored = Stored { config_flavor: flavor, plan };
    let mut plan = serde_json::to_value(&stored).map_err(unserialisable)?;
    plan["plan"]["parameters"] = parameters;
    Ok(StoredPlan {
        config_flavor: serde_json::to_value(&stored.config_flavor).map_err(unserialisable)?,
        plan,
        project_id,
        sequence,
    })
}

fn run_as<'a, G: Generation>(
    state: &'a AppState,
    plan: &'a Value,
    ctx: RunContext<'a>,
) -> BoxFuture<'a, Result<Value, ApiError>> {
    Box::pin(async move {
        let stored = Stored::<PlanOf<G>>::deserialize(plan)
            .map_err(|e| ApiError::internal(format!("the stored plan is not a {} plan: {e}", G::KIND)))?;
        let answer = G::run(&stored.plan, Run { state, flavor: &stored.config_flavor, ctx }).await?;
        serde_json::to_value(answer).map_err(|e| ApiError::internal(format!("the answer: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flavor::Chosen;

    /// A stored plan reads in this build and in the builds before 2026-12-02, whose `Plan` had a
    /// required `parameters` field (their shape below): replicas of both share one database during
    /// a rolling deploy. Both report the same `parameters_used`.
    #[test]
    fn a_stored_plan_reads_in_this_build_and_the_previous_one() {
        #[derive(Deserialize)]
        struct PreviousPlan {
            #[allow(dead_code)]
            request: Value,
            parameters: Value,
            #[allow(dead_code)]
            kept: Value,
        }
        let chosen: Chosen = crate::flavor::choose(None);
        let body = serde_json::from_value(json!({"idea": "a storm", "character_description": "a keeper"}))
            .expect("a scenes body");
        let (plan, _) = Scenes::validate(body).expect("valid").plan(&chosen.flavor);
        let parameters = serde_json::to_value(Scenes::parameters(&plan)).expect("serialisable");
        let planned = Planned::<Scenes> { plan, flavor: FlavorReport::from(&chosen) };
        let stored = serialise(planned).expect("stored").plan;
        let previous = Stored::<PreviousPlan>::deserialize(&stored).expect("the previous build reads it");
        assert_eq!(previous.plan.parameters, parameters);
        let read = Stored::<PlanOf<Scenes>>::deserialize(&stored).expect("this build reads it");
        assert_eq!(serde_json::to_value(Scenes::parameters(&read.plan)).ok(), Some(parameters));
    }
}
