//! The `mvgen` command line: argument definitions and dispatch, one small function per subcommand.
//! Exit codes: 0 success, 1 configs invalid (`check`) or flavors differ (`diff`), 2 usage or I/O error.

// First, so its macros are in scope in the modules below.
#[macro_use]
mod output;
mod golden;
mod healthcheck;
mod inspect;
mod render;
mod schema;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::compiler::{self, Flavor};
use crate::flavor;

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

/// Runs a non-server subcommand.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve { addr, configs } => return serve::serve(addr, configs.as_deref()),
        Command::Healthcheck { addr } => return healthcheck::healthcheck(addr),
        Command::Check { dir } => return check(&dir),
        Command::Flavors { source } => Catalog::load(&source).map(|c| inspect::flavors(&c.all())),
        Command::Show { flavor, explain, json, source } => {
            Catalog::load(&source).and_then(|c| inspect::show(c.get(&flavor)?, explain, json))
        }
        Command::Diff { a, b, source } => Catalog::load(&source).and_then(|c| inspect::diff(c.get(&a)?, c.get(&b)?)),
        Command::Render { flavor, what, all, json, source } => {
            Catalog::load(&source).and_then(|c| match (flavor, what, all) {
                (Some(flavor), Some(what), None) => render::render(c.get(&flavor)?, what, json),
                (None, None, Some(dir)) => golden::render_all(&c.all(), &dir),
                (_, Some(_), Some(_)) => Err("render --all takes no scenes/character/video request".into()),
                _ => Err("render: say what to render: scenes, character or video".into()),
            })
        }
        Command::Schema { out } => schema::schema(&out),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("mvgen: {message}");
            ExitCode::from(2)
        }
    }
}

fn check(dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        eprintln!("mvgen: {}: not a directory", dir.display());
        return ExitCode::from(2);
    }
    match compiler::compile(dir) {
        Ok(flavors) => {
            let names: Vec<&str> = flavors.iter().map(|f| f.name.as_ref()).collect();
            outln!("{}: {} flavors OK ({})", dir.display(), flavors.len(), names.join(", "));
            ExitCode::SUCCESS
        }
        Err(diags) => {
            // One fault per line on stdout, in the build's format, for editors and CI annotations.
            outln!("{diags}");
            ExitCode::from(1)
        }
    }
}

/// The flavors a command works on.
enum Catalog {
    Embedded,
    Compiled(Vec<Flavor>),
}

impl Catalog {
    fn load(source: &Source) -> Result<Catalog, String> {
        match &source.configs {
            None => Ok(Catalog::Embedded),
            Some(dir) => compiler::compile(dir)
                .map(Catalog::Compiled)
                .map_err(|diags| format!("{} is invalid:\n{diags}", dir.display())),
        }
    }

    /// Default first, then by name.
    fn all(&self) -> Vec<&Flavor> {
        match self {
            Catalog::Embedded => flavor::all(),
            Catalog::Compiled(list) => flavor::default_first(list),
        }
    }

    fn get(&self, name: &str) -> Result<&Flavor, String> {
        let found = match self {
            Catalog::Embedded => flavor::lookup(name),
            Catalog::Compiled(list) => list.iter().find(|f| f.name == name),
        };
        found.ok_or_else(|| {
            let all = self.all();
            let names: Vec<&str> = all.iter().map(|f| f.name.as_ref()).collect();
            let hint = compiler::did_you_mean(name, &names);
            format!("no flavor named `{name}`{hint}; flavors: {}", names.join(", "))
        })
    }
}
