//! The final cut: scene clips (H.264 MP4s) and a song put into one MP4 by copying their coded
//! frames, never decoding or encoding one. This module plans the file: which samples of which
//! clip go where, the new sample tables, and the header (`ftyp`, `moov`, then the `mdat` header,
//! so the file starts playing before it is all downloaded). What it plans is a list of
//! [`Piece`]s (byte ranges of the clips, song frames, silence) that the caller copies in order
//! from wherever the files are; nothing here does IO.
//!
//! - [`clip`]: a clip's header read into per-sample tables;
//! - [`timeline`]: trims, and where each clip's frames land in the cut;
//! - [`layout`]: the tracks, chunks and pieces of the whole file;
//! - [`header`]: the `moov` written with `mp4-atom`;
//! - [`in_band`]: parameter sets repeated where the video switches sample entry;
//! - [`silence`]: silent AAC frames for a clip without audio between clips with audio.

pub mod clip;
mod header;
mod in_band;
pub mod layout;
mod silence;
pub mod timeline;

pub use clip::{BoxAt, ClipTracks, MAX_MOOV_BYTES, box_at};
pub use layout::{Cut, Piece, plan};
pub use timeline::{ClipIn, ClipSpan, SongPlan, Sound};

/// Why a cut could not be planned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CutError {
    /// A clip's file is not an MP4 the cut can read.
    #[error("{0}")]
    Clip(String),
    /// Clips that cannot share one track: different codecs, sizes or frame rates.
    #[error("{0}")]
    Mismatch(String),
    /// A trim outside its clip, or one that leaves no frame.
    #[error("{0}")]
    Trim(String),
    /// The header could not be written (a bug, not the caller's input).
    #[error("the cut's header could not be written: {0}")]
    Header(String),
}

/// `t` in timescale `from` converted to `to`, rounded to the nearest tick.
fn rescale(t: u64, from: u32, to: u32) -> u64 {
    if from == to || from == 0 {
        return t;
    }
    ((u128::from(t) * u128::from(to) + u128::from(from) / 2) / u128::from(from)) as u64
}
