//! A song for the final cut: which accepted format it is, how long, and its coded frames as one
//! MP4 audio track, never decoded. Reads a sync `Read + Seek` source (the caller bridges a stored
//! file with `SyncIoBridge` inside `spawn_blocking`); knows nothing of HTTP or storage.
//!
//! Accepted: MP3, AAC (M4A/MP4 audio or raw ADTS), Opus (Ogg or WebM), FLAC, each copied as it
//! is. The demuxing is `symphonia`'s; what it lets pass is checked here, so a song that would
//! make a broken cut is refused when it is uploaded: a file cut mid-frame, bytes in an MP3 or ADTS
//! stream that are not whole frames (symphonia resyncs past them silently), a FLAC shorter than
//! its STREAMINFO says, no frames at all.
//!
//! `found` names what a file is from its first bytes; `entry` builds the MP4 sample entries;
//! `edits` reads an M4A's edit list for the encoder priming symphonia does not report.

mod edits;
mod entry;
mod found;

use std::io::{Read, Seek, SeekFrom};

use mp4_atom::Codec;
use serde::Serialize;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::{CODEC_ID_AAC, CODEC_ID_FLAC, CODEC_ID_MP3, CODEC_ID_OPUS};
use symphonia::core::errors::Error as DemuxError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

pub use found::Container;

/// What every refusal lists.
pub const ACCEPTED: &str = "MP3, AAC (M4A or ADTS), Opus (Ogg or WebM), FLAC";

/// The song's codec, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SongCodec {
    Mp3,
    Aac,
    Opus,
    Flac,
}

/// What a song is: read once, kept with the stored file.
#[derive(Debug, Clone, PartialEq)]
pub struct SongInfo {
    pub codec: SongCodec,
    /// "mp3", "adts", "mp4", "ogg", "webm" or "flac".
    pub container: &'static str,
    /// audio/mpeg, audio/aac, audio/mp4, audio/ogg, audio/webm or audio/flac.
    pub content_type: &'static str,
    /// How long the song plays: the sum of its frames' durations less the priming (the encoder's
    /// delay, which players skip), as ffprobe reports a file that declares its priming.
    pub duration_seconds: f64,
    pub sample_rate: u32,
    pub channels: u16,
    /// The priming the file declares, in samples at `sample_rate`: players skip it (see
    /// [`SongTrack::priming`]), and so must anything that times events in the decoded audio.
    pub priming: u32,
}

/// Why a song was refused.
#[derive(Debug, thiserror::Error)]
pub enum SongError {
    /// Not an accepted format at all (WAV, a video file, an image, text).
    #[error("the song is {found}; accepted: {ACCEPTED}")]
    NotAccepted { found: String },
    /// An accepted format, but truncated or damaged.
    #[error("the song is truncated or corrupt: {detail}; accepted: {ACCEPTED}")]
    Corrupt { detail: String },
    /// The source itself failed (a store that stopped answering): the song may be fine.
    #[error("the song could not be read: {0}")]
    Io(std::io::Error),
}

/// One coded frame: exactly the MP4 sample's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SongFrame {
    /// ADTS header stripped; an MP3 frame with its header; an Opus packet; a FLAC frame.
    pub data: Vec<u8>,
    /// In timescale units.
    pub duration: u32,
}

/// The song's coded frames as one MP4 audio track, in order, never decoded.
pub struct SongTrack {
    pub info: SongInfo,
    /// The MP4 sample entry: `mp4a`+`esds` (AAC with its AudioSpecificConfig; MP3 as
    /// objectTypeIndication 0x6B without one), `Opus`+`dOps`, `fLaC`+`dfLa`.
    pub entry: Codec,
    /// The track's timescale: the sample rate (48000 for Opus).
    pub timescale: u32,
    /// Samples to hide at the start, in timescale units: Opus' pre-skip, an M4A's edit list, an
    /// MP3's LAME-tag encoder delay (without the decoder's own 529); 0 when the file does not say.
    pub priming: u32,
    demux: Demux,
}

impl SongTrack {
    /// Opens a song: reads it through once to check every frame and sum the durations (so a song
    /// that would cut short is refused here, not halfway through a mux), then rewinds to hand the
    /// frames out with [`SongTrack::next_frame`].
    pub fn open(source: Box<dyn MediaSource>) -> Result<SongTrack, SongError> {
        let (info, mss) = scan(source)?;
        let mut source: Box<dyn MediaSource> = Box::new(mss);
        source.seek(SeekFrom::Start(0)).map_err(SongError::Io)?;
        let demux = Demux::open(source)?;
        Ok(SongTrack { info, entry: demux.entry.clone(), timescale: demux.timescale, priming: demux.priming, demux })
    }

    /// The next frame, `None` after the last.
    pub fn next_frame(&mut self) -> Result<Option<SongFrame>, SongError> {
        self.demux.next()
    }
}

/// Reads the whole song once: what it is and how long (the duration from the frames, so a VBR MP3
/// without a Xing header is right).
pub fn probe(source: Box<dyn MediaSource>) -> Result<SongInfo, SongError> {
    scan(source).map(|(info, _)| info)
}

/// The stored type of a song from its first bytes (`ID3` or an MPEG frame sync, ADTS, `ftyp`,
/// `OggS`, `fLaC`, EBML), or the refusal naming what they are. A first look only: an ID3 tag is
/// taken for MP3 and `ftyp` for audio until [`probe`] reads the file.
pub fn sniff(head: &[u8]) -> Result<&'static str, SongError> {
    let after_id3 = head.get(usize::try_from(found::id3v2_len(head)).unwrap_or(usize::MAX)..).unwrap_or(&[]);
    found::classify(head, after_id3).map(Container::content_type).map_err(|found| SongError::NotAccepted { found })
}

/// A `MediaSource` over any sync `Read + Seek` of known length (a stored file bridged with
/// `SyncIoBridge`, a `std::fs::File`, a cursor).
pub struct SeekableSource<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek + Send + Sync> SeekableSource<R> {
    pub fn boxed(inner: R, len: u64) -> Box<dyn MediaSource>
    where
        R: 'static,
    {
        Box::new(SeekableSource { inner, len })
    }
}

impl<R: Read> Read for SeekableSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for SeekableSource<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: Read + Seek + Send + Sync> MediaSource for SeekableSource<R> {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// Runs a song's frames to the end, checking each, and hands back the source.
fn scan(source: Box<dyn MediaSource>) -> Result<(SongInfo, MediaSourceStream<'static>), SongError> {
    let mut demux = Demux::open(source)?;
    let mut total: u64 = 0;
    while let Some(frame) = demux.next()? {
        total += u64::from(frame.duration);
    }
    if total == 0 {
        return Err(SongError::Corrupt { detail: format!("the {} holds no audio frames", demux.format_name()) });
    }
    // A priming (an edit list's start, a pre-skip) that hides every sample leaves nothing to play.
    if u64::from(demux.priming) >= total {
        return Err(SongError::Corrupt {
            detail: format!(
                "the {} declares {} samples of encoder priming, as many as or more than its {total}: nothing would play",
                demux.format_name(),
                demux.priming
            ),
        });
    }
    let info = SongInfo {
        codec: demux.codec,
        container: demux.container.name(),
        content_type: demux.container.content_type(),
        duration_seconds: total.saturating_sub(u64::from(demux.priming)) as f64 / f64::from(demux.timescale),
        sample_rate: demux.sample_rate,
        channels: demux.channels,
        priming: demux.priming,
    };
    Ok((info, demux.reader.into_inner()))
}

/// How much of a raw MP3 or ADTS file the frames must account for: symphonia skips bytes that
/// are not frames (and ends quietly at a frame cut short), so the bytes are counted here.
struct RawLayout {
    len: u64,
    /// ID3v2 tag, and for an MP3 the Xing/Info frame symphonia reads as a header, not audio.
    leading: u64,
    /// ID3v1 and APEv2 tags at the end.
    trailing: u64,
    /// Bytes per frame not in the packet (the ADTS header).
    per_frame: u64,
    /// The bytes just after the ID3v2 tag, to find where the first frame starts.
    window: Vec<u8>,
    located: bool,
    consumed: u64,
}

/// One song being demuxed: the reader, the track chosen, and the checks on its frames.
struct Demux {
    reader: Box<dyn FormatReader>,
    track_id: u32,
    codec: SongCodec,
    container: Container,
    sample_rate: u32,
    channels: u16,
    timescale: u32,
    priming: u32,
    entry: Codec,
    raw: Option<RawLayout>,
    /// FLAC: the samples STREAMINFO declares (when known), and those seen.
    flac_expected: Option<u64>,
    seen: u64,
    frames: u64,
    ended: bool,
}

impl Demux {
    fn open(mut source: Box<dyn MediaSource>) -> Result<Demux, SongError> {
        let len = source.byte_len();
        let head = read_at(&mut source, 0, 64)?;
        let id3 = found::id3v2_len(&head);
        let window = read_at(&mut source, id3, 4096)?;
        let container = found::classify(&head, &window).map_err(|found| SongError::NotAccepted { found })?;
        let raw = match (container, len) {
            (Container::Mp3 | Container::Adts, Some(len)) => {
                let tail_start = len.saturating_sub(160);
                let tail = read_at(&mut source, tail_start, 160)?;
                let per_frame = match (container, window.get(1)) {
                    // protection_absent = 0: a 2-byte CRC follows the 7-byte header.
                    (Container::Adts, Some(b)) if b & 0x01 == 0 => 9,
                    (Container::Adts, _) => 7,
                    _ => 0,
                };
                Some(RawLayout {
                    len,
                    leading: id3,
                    trailing: trailing_tags(&tail, len),
                    per_frame,
                    window: window.clone(),
                    located: container == Container::Adts,
                    consumed: 0,
                })
            }
            _ => None,
        };
        let edit = match (container, len) {
            (Container::Mp4, Some(len)) => edits::mp4_first_edit(&mut source, len).map_err(SongError::Io)?,
            _ => None,
        };
        source.seek(SeekFrom::Start(0)).map_err(SongError::Io)?;

        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        hint.mime_type(container.content_type());
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|err| demux_error(err, container))?;

        if reader.tracks().iter().any(|t| matches!(t.codec_params, Some(CodecParameters::Video(_)))) {
            return Err(SongError::NotAccepted {
                found: format!("a video file ({} with a video track)", container_words(container)),
            });
        }
        let audio: Vec<_> = reader
            .tracks()
            .iter()
            .filter_map(|t| match &t.codec_params {
                Some(CodecParameters::Audio(params)) => Some((t, params)),
                _ => None,
            })
            .collect();
        let Some(&(track, params)) = audio.first() else {
            let what = if reader.tracks().is_empty() { "no tracks" } else { "no audio track" };
            return Err(SongError::NotAccepted { found: format!("{} with {what}", container_words(container)) });
        };
        let codec = match params.codec {
            CODEC_ID_MP3 => SongCodec::Mp3,
            CODEC_ID_AAC => SongCodec::Aac,
            CODEC_ID_OPUS => SongCodec::Opus,
            CODEC_ID_FLAC => SongCodec::Flac,
            other => {
                let found = format!("{} holding {} audio", container_words(container), codec_words(other));
                return Err(SongError::NotAccepted { found });
            }
        };
        let channels = params.channels.as_ref().map(|c| c.count()).and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
        let corrupt = |detail: &str| SongError::Corrupt { detail: detail.to_string() };
        let extra = params.extra_data.as_deref();
        let (entry, sample_rate, channels, priming, flac_expected) = match codec {
            SongCodec::Opus => {
                let head = extra
                    .and_then(entry::OpusHead::parse)
                    .ok_or_else(|| corrupt("the Opus stream has no valid OpusHead"))?;
                (entry::opus(&head), 48_000, u16::from(head.channels), u32::from(head.pre_skip), None)
            }
            SongCodec::Flac => {
                let info = extra.ok_or_else(|| corrupt("the FLAC stream has no STREAMINFO"))?;
                let entry = entry::flac(info).ok_or_else(|| corrupt("the FLAC STREAMINFO is too short"))?;
                let rate = params.sample_rate.unwrap_or(0);
                let expected = entry::flac_total_samples(info).filter(|n| *n > 0);
                (entry, rate, channels, 0, expected)
            }
            SongCodec::Aac => {
                let rate = params.sample_rate.unwrap_or(0);
                let config = match extra {
                    Some(config) if !config.is_empty() => config.to_vec(),
                    _ => entry::adts_audio_specific_config(&window)
                        .ok_or_else(|| corrupt("the AAC stream has no AudioSpecificConfig"))?,
                };
                (entry::aac(rate, channels, config), rate, channels, priming(edit, track.delay, rate), None)
            }
            SongCodec::Mp3 => {
                let rate = params.sample_rate.unwrap_or(0);
                (entry::mp3(rate, channels), rate, channels, priming(edit, track.delay, rate), None)
            }
        };
        if sample_rate == 0 || channels == 0 {
            return Err(corrupt("the stream does not say its sample rate or channels"));
        }
        let track_id = track.id;
        Ok(Demux {
            reader,
            track_id,
            codec,
            container,
            sample_rate,
            channels,
            timescale: sample_rate,
            priming,
            entry,
            raw,
            flac_expected,
            seen: 0,
            frames: 0,
            ended: false,
        })
    }

    fn format_name(&self) -> String {
        container_words(self.container).to_string()
    }

    fn next(&mut self) -> Result<Option<SongFrame>, SongError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    self.ended = true;
                    self.check_end()?;
                    return Ok(None);
                }
                Err(err) => return Err(demux_error(err, self.container)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let data = packet.data.into_vec();
            // Durations come from the frames themselves: the containers' figures are coarser
            // (WebM keeps milliseconds), trimmed (symphonia trims an MP3's last frames to a
            // length it estimated from the bitrate) or can lie (a FLAC in MP4's `stts`).
            let duration = match self.codec {
                SongCodec::Opus => entry::opus_packet_samples(&data),
                SongCodec::Mp3 => entry::mp3_frame_samples(&data),
                SongCodec::Aac => Some(entry::AAC_FRAME_SAMPLES),
                // Each frame's header says its length; an MP4's or WebM's `stts`/durations could
                // claim hours for seconds of frames.
                SongCodec::Flac => entry::flac_frame_samples(&data),
            }
            .ok_or_else(|| SongError::Corrupt {
                detail: format!("frame {} of the {} is malformed", self.frames + 1, self.format_name()),
            })?;
            if duration == 0 || data.is_empty() {
                return Err(SongError::Corrupt {
                    detail: format!("frame {} of the {} is empty", self.frames + 1, self.format_name()),
                });
            }
            if let Some(raw) = &mut self.raw {
                if !raw.located {
                    // Where the first audio frame starts: after the tag, and after an Info frame.
                    let probe = &data[..data.len().min(32)];
                    if let Some(at) = raw.window.windows(probe.len()).position(|w| w == probe) {
                        raw.leading += at as u64;
                    }
                    raw.located = true;
                }
                raw.consumed += data.len() as u64 + raw.per_frame;
            }
            self.frames += 1;
            self.seen += u64::from(duration);
            return Ok(Some(SongFrame { data, duration }));
        }
    }

    /// At the end: every byte of a raw stream is a frame or a tag, and a FLAC has every sample
    /// its STREAMINFO promised.
    fn check_end(&self) -> Result<(), SongError> {
        if let Some(raw) = &self.raw {
            let accounted = raw.leading + raw.consumed + raw.trailing;
            if accounted != raw.len && self.frames > 0 {
                let stray = raw.len.abs_diff(accounted);
                return Err(SongError::Corrupt {
                    detail: format!(
                        "{stray} bytes of the {} are not whole frames (a file cut mid-frame, or damaged data)",
                        self.format_name()
                    ),
                });
            }
        }
        if let Some(expected) = self.flac_expected
            && self.seen != expected
        {
            return Err(SongError::Corrupt {
                detail: format!("the FLAC holds {} samples where its STREAMINFO says {expected}", self.seen),
            });
        }
        Ok(())
    }
}

/// Samples hidden at the start: an MP4's edit list says it (in its track's timescale), else the
/// demuxer's figure (an MP3's LAME tag), else none.
fn priming(edit: Option<(u64, u32)>, delay: Option<u32>, sample_rate: u32) -> u32 {
    match edit {
        Some((media_time, timescale)) => {
            let samples = media_time.checked_mul(u64::from(sample_rate)).map(|n| n / u64::from(timescale));
            samples.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
        }
        None => delay.unwrap_or(0),
    }
}

/// Up to `len` bytes at `at` (fewer at the end of the source).
fn read_at(source: &mut Box<dyn MediaSource>, at: u64, len: usize) -> Result<Vec<u8>, SongError> {
    source.seek(SeekFrom::Start(at)).map_err(SongError::Io)?;
    let mut bytes = Vec::with_capacity(len);
    source.take(len as u64).read_to_end(&mut bytes).map_err(SongError::Io)?;
    Ok(bytes)
}

/// The bytes of ID3v1 (`TAG`, 128 bytes) and APEv2 (`APETAGEX` footer) tags at the end of a raw
/// stream, from its last 160 bytes.
fn trailing_tags(tail: &[u8], len: u64) -> u64 {
    let mut trailing = 0u64;
    let mut end = tail.len();
    if end >= 128 && &tail[end - 128..end - 125] == b"TAG" {
        trailing += 128;
        end -= 128;
    }
    if end >= 32 && &tail[end - 32..end - 24] == b"APETAGEX" {
        let footer = &tail[end - 32..end];
        let size = u64::from(u32::from_le_bytes([footer[12], footer[13], footer[14], footer[15]]));
        let has_header = footer[23] & 0x80 != 0;
        trailing += size + if has_header { 32 } else { 0 };
    }
    trailing.min(len)
}

/// A codec mvgen does not copy, named for a refusal.
fn codec_words(codec: symphonia::core::codecs::audio::AudioCodecId) -> &'static str {
    use symphonia::core::codecs::audio::well_known::{CODEC_ID_ALAC, CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_VORBIS};
    match codec {
        CODEC_ID_VORBIS => "Vorbis",
        CODEC_ID_MP1 => "MPEG-1 Layer I",
        CODEC_ID_MP2 => "MPEG-1 Layer II",
        CODEC_ID_ALAC => "ALAC",
        _ => "another codec's",
    }
}

fn container_words(container: Container) -> &'static str {
    match container {
        Container::Mp3 => "MP3",
        Container::Adts => "ADTS AAC",
        Container::Mp4 => "MP4",
        Container::Ogg => "Ogg",
        Container::Webm => "WebM/Matroska",
        Container::Flac => "FLAC",
    }
}

/// A demuxer's error as a refusal: the end of the data where more was due is a cut file, other
/// I/O errors are the source's, anything else is damage.
fn demux_error(err: DemuxError, container: Container) -> SongError {
    let words = container_words(container);
    match err {
        DemuxError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SongError::Corrupt { detail: format!("the {words} ends in the middle of a frame or header") }
        }
        DemuxError::IoError(io) => SongError::Io(io),
        other => SongError::Corrupt { detail: format!("the {words} could not be read ({other})") },
    }
}

#[cfg(test)]
mod tests;
