//! The HTTP surface: one test binary, one module per concern.
//!
//! Belongs here: what a client sees over HTTP, whether through `app(state).oneshot(..)` in process
//! (`api`, `bad_input`, `storage`) or through the real binary on 127.0.0.1 when only a real socket
//! shows it (`connections`: timeouts, the connection cap, the shutdown drain; `observability`:
//! `/metrics` and request ids; `songs`: uploads streamed to the store, and song tracks checked
//! with ffmpeg). A new endpoint's tests go in `api` (behaviour) and `bad_input`
//! (its table of bad requests); a new group of endpoints (the jobs API, say) gets a module of its
//! own here; a new storage backend's tests go in `storage`. Provider clients on their own belong in
//! `tests/providers/`, whole runs through real clients in `tests/e2e/`.
//!
//! One binary per area, so the crate is linked once per area rather than once per file.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod bad_input;
mod connections;
mod observability;
mod song_beats;
mod songs;
mod storage;
mod streamed_outputs;
