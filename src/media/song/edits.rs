//! The priming an MP4 song's edit list hides: AAC encoders put 1024 (or 2112) samples of
//! warm-up before the music and write an edit list starting past them. symphonia reads the
//! samples but not the edit, so the cut would start the song that much late; this reads `moov`
//! (with mp4-atom) for the first sound track's first edit.

use std::io::{Read, Seek, SeekFrom};

use mp4_atom::{Decode, FourCC, Moov};
use symphonia::core::io::MediaSource;

/// A `moov` larger than this is not read for its edit list (a song's is a few hundred KiB at most:
/// its sample tables grow by about 8 bytes a frame).
const MAX_MOOV_BYTES: u64 = 32 << 20;

/// Where the first sound track's first edit starts in its media, as (media time, the track's
/// timescale); `None` without an edit list, or when `moov` cannot be read (the song itself is
/// checked by the demuxer, not here).
pub fn mp4_first_edit(source: &mut Box<dyn MediaSource>, len: u64) -> std::io::Result<Option<(u64, u32)>> {
    let Some(moov) = read_moov(source, len)? else { return Ok(None) };
    let Ok(moov) = Moov::decode(&mut moov.as_slice()) else { return Ok(None) };
    let sound = moov.trak.iter().find(|t| t.mdia.hdlr.handler == FourCC::new(b"soun"));
    let Some(trak) = sound else { return Ok(None) };
    let media_time = trak
        .edts
        .as_ref()
        .and_then(|e| e.elst.as_ref())
        .and_then(|elst| elst.entries.iter().find_map(|entry| entry.media_time));
    Ok(media_time.map(|t| (t, trak.mdia.mdhd.timescale.max(1))))
}

/// The whole `moov` box (header included), walking the top-level boxes by their sizes.
fn read_moov(source: &mut Box<dyn MediaSource>, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut at = 0u64;
    while at + 8 <= len {
        source.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 16];
        let got = source.by_ref().take(16).read(&mut header)?;
        if got < 8 {
            return Ok(None);
        }
        let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
            0 => len - at,
            1 if got >= 16 => u64::from_be_bytes(header[8..16].try_into().unwrap_or_default()),
            1 => return Ok(None),
            n => u64::from(n),
        };
        if size < 8 {
            return Ok(None);
        }
        if &header[4..8] == b"moov" {
            if size > MAX_MOOV_BYTES || at + size > len {
                return Ok(None);
            }
            source.seek(SeekFrom::Start(at))?;
            let mut moov = Vec::with_capacity(size as usize);
            source.by_ref().take(size).read_to_end(&mut moov)?;
            return Ok(Some(moov));
        }
        at = at.saturating_add(size);
    }
    Ok(None)
}
