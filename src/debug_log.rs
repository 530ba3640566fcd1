//! `MV_DEBUG_MODE` request logs: which flavor was chosen, every config value a request consumed
//! (flavor, file, key, origin, the variable it was loaded into, the value) and the final prompt.
//! Callers only invoke these when debug mode is on; keys and tokens are never among the values.

use crate::flavor::Chosen;
use crate::prompts::Consumed;

/// Target for every debug-mode line, so they can be filtered as a group.
const TARGET: &str = "mvgen::debug";

pub fn chosen(chosen: &Chosen) {
    let found = if chosen.fell_back() { "not found" } else { "found" };
    tracing::info!(
        target: TARGET,
        requested = chosen.requested.as_deref().unwrap_or("(none)"),
        used = %chosen.flavor.name,
        hash = %chosen.flavor.hash,
        found,
        "config flavor chosen"
    );
}

fn consumed(chosen: &Chosen, consumed: &[Consumed<'_>]) {
    for c in consumed {
        let origin = if c.entry.origin.is_builtin() {
            c.entry.origin.to_string()
        } else if c.entry.origin.flavor == chosen.flavor.name {
            format!("own {}", c.entry.origin)
        } else {
            format!("inherited from {} ({})", c.entry.origin.flavor, c.entry.origin)
        };
        tracing::info!(
            target: TARGET,
            flavor = %chosen.flavor.name,
            file = c.entry.file.file_name(),
            key = c.entry.key,
            origin = %origin,
            loaded_into = c.target,
            value = %c.entry.value,
            "config value loaded"
        );
    }
}

/// Everything a plan took from the flavor, then the prompt it sends.
pub fn plan(chosen: &Chosen, kind: &'static str, consumed: &[Consumed<'_>], prompt: &str) {
    self::consumed(chosen, consumed);
    self::prompt(chosen, kind, prompt);
}

fn prompt(chosen: &Chosen, kind: &'static str, prompt: &str) {
    tracing::info!(target: TARGET, flavor = %chosen.flavor.name, kind, prompt, "final prompt");
}
