//! `mvgen render`: prints exactly what would be sent upstream for a request, through the same
//! validation and plans the server uses.

use clap::{ArgMatches, Command, FromArgMatches, Subcommand};
use serde_json::{Value, json};

use super::Outcome;
use crate::api::KINDS;
use crate::generation::driver::Kind;
use crate::model::Flavor;

/// A request to render: one subcommand per generation kind of the route table (`api::KINDS`),
/// whose arguments (and their checks) are the kind's API request body.
pub struct RenderWhat {
    kind: &'static Kind,
    args: ArgMatches,
}

impl std::fmt::Debug for RenderWhat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderWhat").field("command", &self.kind.command).field("args", &self.args).finish()
    }
}

impl FromArgMatches for RenderWhat {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let missing = || clap::Error::new(clap::error::ErrorKind::MissingSubcommand);
        let (name, args) = matches.subcommand().ok_or_else(missing)?;
        let kind = KINDS.iter().find(|k| k.command == name).ok_or_else(missing)?;
        Ok(RenderWhat { kind, args: args.clone() })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = RenderWhat::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for RenderWhat {
    fn augment_subcommands(command: Command) -> Command {
        KINDS.iter().fold(command, |command, kind| command.subcommand((kind.render.subcommand)()))
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        RenderWhat::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        KINDS.iter().any(|k| k.command == name)
    }
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
    (what.kind.render.plan)(flavor, &what.args)
}
