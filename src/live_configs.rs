//! `mvgen serve --configs DIR`: flavors compiled from a directory on disk at start, then again after
//! every saved edit, so a prompt author sees a change in the running service within a second.
//!
//! The served table sits behind an `ArcSwap`: choosing a flavor is one atomic load, and a request
//! keeps the table it started with alive through an `Arc` (`FlavorRef::Live`). An edit that
//! compiles swaps in a new table; one that does not keeps the last good table and publishes the
//! compiler's `file:line:col` diagnostics (logged, in `get_config_flavors`, on the create page).
//! An edit that empties or removes a file may be an in-place save half way, so it is served only
//! once the directory has been still for a while (`reload_when_settled`).
//! Without `--configs` none of this exists: `FlavorSource::Embedded` goes straight to the phf table.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

// The compiler's only run-time user: `serve --configs DIR` recompiles on every edit (see `compile`).
use crate::compiler::{Diagnostics, FilesRead};
use crate::flavor::{self, Chosen, FlavorRef, Table};

/// Events for one path closer together than this are one event: an editor's save is often several
/// writes and a rename.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long the whole directory must be still before it is recompiled.
const QUIET: Duration = Duration::from_millis(50);
/// The longest a reload waits for quiet.
const MAX_SETTLE: Duration = Duration::from_millis(500);
/// Once a compile finds a file emptied or removed, how long the directory must then be still before
/// that state is served: an in-place save may be half way (see `reload_when_settled`).
const EMPTIED_SETTLE: Duration = Duration::from_secs(1);
/// The longest such a hold lasts while the directory keeps changing.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// Where a server's flavors come from, chosen once at start.
#[derive(Clone, Default)]
pub enum FlavorSource {
    /// The table build.rs embedded: one perfect-hash probe per lookup, no IO, no lock.
    #[default]
    Embedded,
    /// A directory compiled at start and recompiled on every change.
    Live(Arc<LiveConfigs>),
}

impl FlavorSource {
    /// The flavor a request gets (see `flavor::choose`).
    pub fn choose(&self, requested: Option<&str>) -> Chosen {
        match self {
            FlavorSource::Embedded => flavor::choose(requested),
            FlavorSource::Live(live) => live.choose(requested),
        }
    }

    /// How many flavors are served.
    pub fn count(&self) -> usize {
        match self {
            FlavorSource::Embedded => flavor::names().len(),
            FlavorSource::Live(live) => live.snapshot().table.flavors().len(),
        }
    }

    /// Every flavor name, sorted (for error answers).
    pub fn names(&self) -> Vec<String> {
        match self {
            FlavorSource::Embedded => flavor::names().iter().map(|n| (*n).to_string()).collect(),
            FlavorSource::Live(live) => live.snapshot().table.names().map(String::from).collect(),
        }
    }
}

/// What the server serves right now, and why it might not be what is on disk.
#[derive(Debug)]
pub struct Snapshot {
    /// The last table that compiled.
    pub table: Arc<Table>,
    /// 1 for the table compiled at start, +1 for every edit that compiled to something different.
    pub generation: u64,
    /// Why the directory's current content is not being served (`file:line:col: message` lines);
    /// empty when it is.
    pub diagnostics: Vec<String>,
}

/// Why `mvgen serve --configs DIR` cannot start.
#[derive(Debug)]
pub enum StartError {
    /// Missing, not a directory, or unreadable (exit 2).
    Unusable(String),
    /// The directory does not compile; there is no last good table to serve (exit 1).
    Invalid(Diagnostics),
}

/// A watched configs directory and the table compiled from it.
pub struct LiveConfigs {
    /// As given, so diagnostics name paths the way the author typed them.
    dir: PathBuf,
    /// Absolute, to match the watcher's event paths.
    absolute: PathBuf,
    current: ArcSwap<Snapshot>,
    /// Kept alive for as long as the server runs; `None` until `watch`.
    watcher: Mutex<Option<Debouncer<RecommendedWatcher>>>,
    /// Whether `dir` itself is watched (it stops being when the directory is deleted).
    watching_dir: Mutex<bool>,
    /// The files behind the last compile that was served or reported, with their sizes.
    last_read: Mutex<FilesRead>,
}

/// One compile of the directory, not yet served.
struct Compiled {
    /// `None` when the directory is gone.
    outcome: Option<Result<Option<Table>, Diagnostics>>,
    read: FilesRead,
}

impl std::fmt::Debug for LiveConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfigs").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The one entry point into the compiler on the serving side. Only a developer's `serve --configs DIR`
/// gets here: prompt authors edit a directory and expect the running service to pick it up within a
/// second, so that directory must be compiled at run time, with the same rules build.rs applies. Every
/// other server serves the table build.rs compiled and never reaches the compiler. `None` when the
/// tree has no default flavor (the compiler refuses such a tree, so never in practice). With the
/// files the compile read, for `reload_when_settled`.
fn compile(dir: &Path) -> (Result<Option<Table>, Diagnostics>, FilesRead) {
    let (flavors, read) = crate::compiler::compile_reading(dir);
    (flavors.map(Table::new), read)
}

impl LiveConfigs {
    /// Compiles `dir` once; the server refuses to start unless it is a readable directory that compiles.
    pub fn open(dir: &Path) -> Result<Arc<LiveConfigs>, StartError> {
        let shown = dir.display();
        if let Err(e) = std::fs::read_dir(dir) {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such directory".to_string(),
                std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
                _ => e.to_string(),
            };
            return Err(StartError::Unusable(format!("--configs {shown}: {why}")));
        }
        let absolute =
            std::fs::canonicalize(dir).map_err(|e| StartError::Unusable(format!("--configs {shown}: {e}")))?;
        let (table, read) = compile(dir);
        let table = table.map_err(StartError::Invalid)?;
        let table = table.ok_or_else(|| StartError::Unusable(format!("{shown}: no `default` flavor")))?;
        let snapshot = Snapshot { table: Arc::new(table), generation: 1, diagnostics: Vec::new() };
        Ok(Arc::new(LiveConfigs {
            dir: dir.to_path_buf(),
            absolute,
            current: ArcSwap::from_pointee(snapshot),
            watcher: Mutex::new(None),
            watching_dir: Mutex::new(false),
            last_read: Mutex::new(read),
        }))
    }

    /// The directory as given on the command line.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What is served right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The flavor a request gets from the current table.
    pub fn choose(&self, requested: Option<&str>) -> Chosen {
        let table = Arc::clone(&self.current.load().table);
        flavor::choose_in(
            requested,
            |name| table.index(name).map(|i| FlavorRef::Live(Arc::clone(&table), i)),
            || FlavorRef::Live(Arc::clone(&table), table.default),
            || table.names().collect::<Vec<_>>().join(", "),
        )
    }

    /// Starts watching the directory (recursively) and its parent (to see the directory come back
    /// after being deleted). Changes under the directory recompile it once things are quiet.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<()> {
        let (changed, changes) = mpsc::channel::<()>();
        let absolute = self.absolute.clone();
        let shown = self.dir.display().to_string();
        let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| match events {
            Ok(events) if events.iter().any(|e| e.path.starts_with(&absolute)) => {
                let _ = changed.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(dir = %shown, "live configs: watcher error: {e}"),
        })
        .with_context(|| format!("cannot watch {}", self.dir.display()))?;
        if let Some(parent) = self.absolute.parent() {
            // Best effort: without it a deleted directory that comes back is not noticed.
            if let Err(e) = debouncer.watcher().watch(parent, RecursiveMode::NonRecursive) {
                tracing::warn!("live configs: cannot watch {}: {e}", parent.display());
            }
        }
        debouncer
            .watcher()
            .watch(&self.absolute, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", self.dir.display()))?;
        *lock(&self.watching_dir) = true;
        *lock(&self.watcher) = Some(debouncer);
        let weak: Weak<LiveConfigs> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("live-configs".into())
            .spawn(move || reload_when_settled(&changes, &weak))
            .context("cannot start the live configs thread")?;
        Ok(())
    }

    /// Recompiles the directory: a different table that compiles is swapped in; anything else keeps
    /// the last good table and says why.
    pub fn reload(&self) {
        self.serve(self.compile_now());
    }

    fn compile_now(&self) -> Compiled {
        if !self.dir.is_dir() {
            return Compiled { outcome: None, read: FilesRead::new() };
        }
        self.rewatch();
        let (outcome, read) = compile(&self.dir);
        Compiled { outcome: Some(outcome), read }
    }

    /// A file that had content in the last compile served or reported and has none in `compiled`
    /// (emptied, removed, or no longer readable as a configs file).
    fn emptied(&self, compiled: &Compiled) -> Option<String> {
        let last = lock(&self.last_read);
        last.iter()
            .find(|(path, len)| **len > 0 && compiled.read.get(*path).is_none_or(|now| *now == 0))
            .map(|(path, _)| path.clone())
    }

    /// Serves `compiled` when it is a new table that compiled; anything else keeps the last good
    /// table and says why.
    fn serve(&self, compiled: Compiled) {
        let old = self.current.load_full();
        let shown = self.dir.display();
        *lock(&self.last_read) = compiled.read;
        let Some(outcome) = compiled.outcome else {
            *lock(&self.watching_dir) = false;
            let message = format!(
                "{shown}: the watched directory is gone; still serving the last good flavors (generation {})",
                old.generation
            );
            if old.diagnostics != [message.clone()] {
                tracing::warn!(dir = %shown, "live configs: {message}");
                self.publish(&old, Arc::clone(&old.table), old.generation, vec![message]);
            }
            return;
        };
        match outcome {
            Ok(Some(table)) if table.flavors == old.table.flavors => {
                if !old.diagnostics.is_empty() {
                    tracing::info!(dir = %shown, generation = old.generation, "live configs: fixed; serving it again");
                    self.publish(&old, Arc::clone(&old.table), old.generation, Vec::new());
                }
            }
            Ok(Some(table)) => {
                let generation = old.generation + 1;
                tracing::info!(
                    dir = %shown,
                    generation,
                    flavors = table.flavors.len(),
                    "live configs: reloaded"
                );
                self.publish(&old, Arc::new(table), generation, Vec::new());
            }
            Ok(None) => {}
            Err(diags) => {
                let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
                if lines != old.diagnostics {
                    tracing::warn!(
                        dir = %shown,
                        generation = old.generation,
                        "live configs: {} does not compile; still serving the last good flavors:\n{}",
                        shown,
                        lines.join("\n")
                    );
                    self.publish(&old, Arc::clone(&old.table), old.generation, lines);
                }
            }
        }
    }

    fn publish(&self, old: &Arc<Snapshot>, table: Arc<Table>, generation: u64, diagnostics: Vec<String>) {
        // Reloads run one at a time on the watcher's thread; compare-and-swap keeps it correct
        // if a caller ever reloads from elsewhere too.
        self.current.compare_and_swap(old, Arc::new(Snapshot { table, generation, diagnostics }));
    }

    /// Watches the directory again after it was deleted and has come back.
    fn rewatch(&self) {
        let mut watching = lock(&self.watching_dir);
        if *watching {
            return;
        }
        if let Some(debouncer) = lock(&self.watcher).as_mut() {
            match debouncer.watcher().watch(&self.absolute, RecursiveMode::Recursive) {
                Ok(()) => *watching = true,
                Err(e) => tracing::warn!("live configs: cannot watch {} again: {e}", self.dir.display()),
            }
        }
    }
}

/// Waits for changes, then for the directory to be quiet, then recompiles. The debouncer delays
/// each path on its own, so one `rm -r` or `git checkout` can arrive in several batches; compiling
/// only after all of them avoids serving a half-written tree. Ends when the watcher is dropped.
///
/// Quiet is not enough for an in-place save (truncate, then write): a writer that pauses longer than
/// QUIET between the two leaves an empty file, and an empty file is a valid config for every flavor
/// but `default` (it inherits everything), so "it compiles" cannot tell that in-between state from an
/// edit. The rule: a compile in which a file that had content in the last compile served or reported
/// has none (emptied, removed, replaced by something unreadable) is not served. The directory must
/// first be still for EMPTIED_SETTLE, any change meanwhile restarting that wait, and then a fresh
/// compile is served. Why this closes the gap: the decision is taken on the sizes that compile itself
/// read, so no write can slip between a look at the disk and the compile; and the hold lasts across
/// the writes that follow, so the empty state and every partial write after it stay unserved while
/// the writer's pauses are shorter than EMPTIED_SETTLE. What remains, since no watcher can tell a
/// pause from a finished save: a writer pausing longer than EMPTIED_SETTLE (or still writing after
/// MAX_HOLD) has what is on disk then served until its next write; and one whose truncation and
/// first write land within QUIET (so no empty state is ever read), then pauses longer than QUIET mid-
/// file, has that prefix served until its next write. Editors that save by rename are never caught
/// half way.
fn reload_when_settled(changes: &mpsc::Receiver<()>, live: &Weak<LiveConfigs>) {
    while changes.recv().is_ok() {
        wait_for_quiet(changes);
        let Some(held) = live.upgrade() else { return };
        let compiled = held.compile_now();
        let Some(file) = held.emptied(&compiled) else {
            held.serve(compiled);
            continue;
        };
        tracing::info!(
            dir = %held.dir.display(),
            "live configs: {file} was emptied or removed; serving it once the directory has been still for {EMPTIED_SETTLE:?}"
        );
        // Not kept across the wait: the server may shut down meanwhile.
        drop(held);
        if !wait_until_still(changes) {
            return;
        }
        match live.upgrade() {
            Some(live) => live.serve(live.compile_now()),
            None => return,
        }
    }
}

fn wait_for_quiet(changes: &mpsc::Receiver<()>) {
    // Bounded, so a directory that never stops changing is still recompiled twice a second.
    let give_up = Instant::now() + MAX_SETTLE;
    while Instant::now() < give_up && changes.recv_timeout(QUIET).is_ok() {}
}

/// Waits until no change has come for EMPTIED_SETTLE, or MAX_HOLD has passed; false when the
/// watcher is gone.
fn wait_until_still(changes: &mpsc::Receiver<()>) -> bool {
    let give_up = Instant::now() + MAX_HOLD;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match changes.recv_timeout(EMPTIED_SETTLE.min(left)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// These locks guard plain values and never panic while held, but a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_configs(to: &Path) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for entry in std::fs::read_dir(&from).expect("configs") {
            let entry = entry.expect("entry");
            if !entry.file_type().expect("type").is_dir() {
                continue;
            }
            let dest = to.join(entry.file_name());
            std::fs::create_dir_all(&dest).expect("mkdir");
            for file in std::fs::read_dir(entry.path()).expect("flavor dir") {
                let file = file.expect("file");
                std::fs::copy(file.path(), dest.join(file.file_name())).expect("copy");
            }
        }
    }

    #[test]
    fn reload_swaps_keeps_the_last_good_table_and_recovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("configs");
        copy_configs(&dir);
        let live = LiveConfigs::open(&dir).expect("compiles");
        let mv1 = live.choose(Some("mv1"));
        assert!(!mv1.fell_back());
        let scenes = mv1.flavor.parameters.number_of_scenes.value;

        // Nothing changed on disk: no new generation.
        live.reload();
        assert_eq!(live.snapshot().generation, 1);

        let params = dir.join("mv1/parameters.yaml");
        let text = std::fs::read_to_string(&params).expect("read");
        let broken = format!("{text}\nnumber_of_scenes: [\n");
        std::fs::write(&params, &broken).expect("write");
        live.reload();
        let snap = live.snapshot();
        assert_eq!(snap.generation, 1, "a broken edit is not served");
        assert!(snap.diagnostics.iter().any(|d| d.contains("mv1/parameters.yaml:")), "{:?}", snap.diagnostics);
        assert_eq!(live.choose(Some("mv1")).flavor.parameters.number_of_scenes.value, scenes);
        // The request that chose before the edit still holds its flavor.
        assert_eq!(mv1.flavor.name, "mv1");

        std::fs::create_dir_all(dir.join("fresh")).expect("mkdir");
        std::fs::write(&params, text).expect("fix");
        live.reload();
        let snap = live.snapshot();
        assert_eq!((snap.generation, snap.diagnostics.len()), (2, 0));
        assert!(!live.choose(Some("fresh")).fell_back(), "the new flavor is served");

        std::fs::remove_dir_all(&dir).expect("delete");
        live.reload();
        let snap = live.snapshot();
        assert_eq!(snap.generation, 2);
        assert!(snap.diagnostics[0].contains("the watched directory is gone"), "{:?}", snap.diagnostics);
        assert!(!live.choose(Some("fresh")).fell_back(), "the last good table is kept");
    }

    #[test]
    fn open_refuses_missing_files_and_invalid_trees() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(
            matches!(LiveConfigs::open(&tmp.path().join("nope")), Err(StartError::Unusable(m)) if m.contains("no such directory"))
        );
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(LiveConfigs::open(&file), Err(StartError::Unusable(_))));
        assert!(matches!(LiveConfigs::open(tmp.path()), Err(StartError::Invalid(_))), "no default flavor");
    }
}
