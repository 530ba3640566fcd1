//! Copies of project answers by version: their UI polls a project every 3 s and the page follows
//! it, and a finished project of 32 scenes is some 30 KB of JSON to read and write each time. A
//! project's `version` changes with every change, on any replica (it is in the database), so the
//! answer rendered for one version is the answer for as long as the version holds and no job the
//! project waits for can finish (`Store::project_head` says both in one cheap read).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// The most bytes of answers kept; past it the copies are dropped and made again.
const BUDGET: usize = 4 << 20;

struct Kept {
    by_id: HashMap<String, (i64, Bytes)>,
    bytes: usize,
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

/// The answer of project `id` at `version`, if one was kept.
pub fn get(id: &str, version: i64) -> Option<Bytes> {
    let kept = KEPT.lock().ok()?;
    let (at, body) = kept.as_ref()?.by_id.get(id)?;
    (*at == version).then(|| body.clone())
}

/// Keeps `body` as the answer of project `id` at `version`.
pub fn put(id: &str, version: i64, body: Bytes) {
    let Ok(mut kept) = KEPT.lock() else { return };
    let kept = kept.get_or_insert_with(|| Kept { by_id: HashMap::new(), bytes: 0 });
    if kept.bytes + body.len() > BUDGET {
        kept.by_id.clear();
        kept.bytes = 0;
    }
    kept.bytes += body.len();
    if let Some((_, old)) = kept.by_id.insert(id.to_owned(), (version, body)) {
        kept.bytes -= old.len();
    }
}

/// Forgets project `id` (deleted).
pub fn forget(id: &str) {
    if let Ok(mut kept) = KEPT.lock()
        && let Some(kept) = kept.as_mut()
        && let Some((_, old)) = kept.by_id.remove(id)
    {
        kept.bytes -= old.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_answers_only_for_its_version_and_the_budget_holds() {
        put("a", 3, Bytes::from_static(b"{\"v\":3}"));
        assert_eq!(get("a", 3).as_deref(), Some(&b"{\"v\":3}"[..]));
        assert_eq!(get("a", 4), None, "another version is read afresh");
        put("a", 4, Bytes::from_static(b"{\"v\":4}"));
        assert_eq!(get("a", 3), None);
        forget("a");
        assert_eq!(get("a", 4), None);
        let big = Bytes::from(vec![b' '; BUDGET / 2 + 1]);
        put("b", 1, big.clone());
        put("c", 1, big);
        assert!(get("b", 1).is_none() && get("c", 1).is_some(), "past the budget the old copies go");
    }
}
