//! The `mvgen` command line: argument definitions and dispatch, one small function per subcommand.
//! Each returns an [`Outcome`] or an error with its context; `main` alone turns that into the exit
//! code (see [`outcome`]).

// First, so its macros are in scope in the modules below.
#[macro_use]
mod output;
mod golden;
mod healthcheck;
mod inspect;
mod lifecycle;
mod migrate;
pub mod outcome;
mod render;
mod schema;
mod serve;
mod worker;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};

use crate::compiler;
use crate::flavor;
use crate::model::Flavor;
pub use outcome::{NegativeAnswer, Outcome};
pub use output::is_broken_pipe;

/// Music-video generation backend with config flavors compiled into the binary.
#[derive(Debug, Parser)]
#[command(name = "mvgen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and the create page (the default when no subcommand is given).
    Serve {
        /// Address to listen on [env: MVGEN_ADDR; `PORT` sets only the port; default 127.0.0.1:8000].
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Serve the flavors compiled from this configs directory instead of the embedded ones, and
        /// recompile it on every change (for prompt authors; a broken edit keeps the last good table).
        #[arg(long, value_name = "DIR")]
        configs: Option<PathBuf>,
    },
    /// Run job workers only, no API (`MVGEN_WORKERS` jobs at once from `MVGEN_DATABASE_URL`).
    Worker {
        /// Serve `GET /metrics` (and `/health`) on this address, for a scraper [env: MVGEN_METRICS_ADDR; default: none].
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Apply the jobs database's migrations to `MVGEN_DATABASE_URL` and exit (idempotent), so the
    /// role `serve` and `worker` run as needs no DDL rights.
    Migrate,
    /// Exit 0 when a server answers 200 on /health (for container health checks).
    Healthcheck {
        /// The server's address [env: MVGEN_ADDR; `PORT` sets only the port; default 127.0.0.1:8000].
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Validate a configs directory with exactly the build's rules.
    Check {
        /// The configs directory.
        #[arg(default_value = "configs")]
        dir: PathBuf,
    },
    /// List flavors: name, label and parent, default first.
    Flavors {
        #[command(flatten)]
        source: Source,
    },
    /// Print a flavor's resolved values.
    Show {
        flavor: String,
        /// Also say where each value came from (own file:line, or inherited from which flavor).
        #[arg(long)]
        explain: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Print the resolved keys whose values differ between two flavors (exit 1 when any do).
    Diff {
        a: String,
        b: String,
        #[command(flatten)]
        source: Source,
    },
    /// Print exactly what would be sent upstream for a request.
    Render {
        #[arg(required_unless_present = "all")]
        flavor: Option<String>,
        #[command(subcommand)]
        what: Option<render::RenderWhat>,
        /// Golden renders: every flavor x every request in DIR/requests/*.json, written to
        /// DIR/renders/<flavor>/<request>.{prompt.txt,json} (DIR/renders is replaced whole).
        #[arg(long, value_name = "DIR", conflicts_with = "flavor")]
        all: Option<PathBuf>,
        /// Print `{"flavor", "prompt", "parameters"}` as JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Write the JSON Schema (draft 2020-12) of every configs file, for editors and CI.
    Schema {
        /// Where to write them.
        #[arg(long, value_name = "DIR", default_value = "schemas")]
        out: PathBuf,
    },
}

/// Where flavors come from: the table embedded at build time, or a configs directory on disk
/// compiled on the spot (so prompt authors can iterate without rebuilding).
#[derive(Debug, clap::Args)]
pub struct Source {
    /// Compile this configs directory instead of using the embedded flavors.
    #[arg(long, value_name = "DIR", global = true)]
    configs: Option<PathBuf>,
}

/// Runs a subcommand.
pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Serve { addr, configs } => serve::serve(addr, configs.as_deref()),
        Command::Worker { metrics_addr } => worker::worker(metrics_addr),
        Command::Migrate => migrate::migrate(),
        Command::Healthcheck { addr } => healthcheck::healthcheck(addr),
        Command::Check { dir } => check(&dir),
        Command::Flavors { source } => inspect::flavors(&Catalog::load(&source)?.all()),
        Command::Show { flavor, explain, json, source } => {
            inspect::show(Catalog::load(&source)?.get(&flavor)?, explain, json)
        }
        Command::Diff { a, b, source } => {
            let catalog = Catalog::load(&source)?;
            inspect::diff(catalog.get(&a)?, catalog.get(&b)?)
        }
        Command::Render { flavor, what, all, json, source } => {
            let catalog = Catalog::load(&source)?;
            match (flavor, what, all) {
                (Some(flavor), Some(what), None) => render::render(catalog.get(&flavor)?, what, json),
                (None, None, Some(dir)) => golden::render_all(&catalog.all(), &dir),
                (_, Some(_), Some(_)) => bail!("render --all takes no scenes/character/video request"),
                _ => bail!("render: say what to render: scenes, character or video"),
            }
        }
        Command::Schema { out } => schema::schema(&out),
    }
}

fn check(dir: &Path) -> anyhow::Result<Outcome> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    match compiler::compile(dir) {
        Ok(flavors) => {
            let names: Vec<&str> = flavors.iter().map(|f| f.name.as_ref()).collect();
            outln!("{}: {} flavors OK ({})", dir.display(), flavors.len(), names.join(", "))?;
            Ok(Outcome::Success)
        }
        Err(diags) => {
            // One fault per line on stdout, in the build's format, for editors and CI annotations.
            outln!("{diags}")?;
            Ok(Outcome::Negative)
        }
    }
}

/// The flavors a command works on.
enum Catalog {
    Embedded,
    Compiled(Vec<Flavor>),
}

impl Catalog {
    fn load(source: &Source) -> anyhow::Result<Catalog> {
        match &source.configs {
            None => Ok(Catalog::Embedded),
            Some(dir) => compiler::compile(dir)
                .map(Catalog::Compiled)
                .map_err(|diags| anyhow!("{} is invalid:\n{diags}", dir.display())),
        }
    }

    /// Default first, then by name.
    fn all(&self) -> Vec<&Flavor> {
        match self {
            Catalog::Embedded => flavor::all(),
            Catalog::Compiled(list) => flavor::default_first(list),
        }
    }

    fn get(&self, name: &str) -> anyhow::Result<&Flavor> {
        let found = match self {
            Catalog::Embedded => flavor::lookup(name),
            Catalog::Compiled(list) => list.iter().find(|f| f.name == name),
        };
        found.ok_or_else(|| {
            let all = self.all();
            let names: Vec<&str> = all.iter().map(|f| f.name.as_ref()).collect();
            let hint = crate::model::did_you_mean(name, &names);
            anyhow!("no flavor named `{name}`{hint}; flavors: {}", names.join(", "))
        })
    }
}
