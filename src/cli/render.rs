//! `mvgen render`: prints exactly what would be sent upstream for a request, through the same
//! validation and plans the server uses.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Outcome;
use crate::compiler::Flavor;
use crate::generation::Generation;
use crate::generation::character::{Character, CharacterReferenceBody};
use crate::generation::scenes::{CreateScenesBody, Scenes};
use crate::generation::video::{GenerateVideoBody, Video};

/// A request to render, with the fields (and the checks) of the API's request bodies (boxed: a
/// video body is large next to the other commands).
#[derive(Debug, Subcommand)]
pub enum RenderWhat {
    /// The scene writer's prompt.
    Scenes(Box<CreateScenesBody>),
    /// The character reference image prompt.
    Character(Box<CharacterReferenceBody>),
    /// A scene video prompt.
    Video(Box<GenerateVideoBody>),
}

/// Prints the prompt exactly as sent (no added newline), or the JSON form.
pub fn render(flavor: &Flavor, what: RenderWhat, json: bool) -> anyhow::Result<Outcome> {
    let (prompt, parameters) = plan(flavor, what).map_err(anyhow::Error::msg)?;
    if json {
        let out: Value = json!({ "flavor": flavor.name, "prompt": prompt, "parameters": parameters });
        outln!("{out}")?;
    } else {
        out!("{prompt}")?;
    }
    Ok(Outcome::Success)
}

/// The prompt and parameters sent upstream for `what`, through the server's own validation and
/// plans (strings stripped; an empty optional one is not given).
pub fn plan(flavor: &Flavor, what: RenderWhat) -> Result<(String, Value), String> {
    match what {
        RenderWhat::Scenes(body) => planned::<Scenes>(flavor, *body),
        RenderWhat::Character(body) => planned::<Character>(flavor, *body),
        RenderWhat::Video(body) => planned::<Video>(flavor, *body),
    }
}

fn planned<G: Generation>(flavor: &Flavor, body: G::Input) -> Result<(String, Value), String> {
    let (plan, _) = G::validate(body).map_err(|e| e.message)?.plan(flavor);
    Ok((G::prompt(&plan.request).to_string(), plan.parameters))
}
