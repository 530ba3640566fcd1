//! A song decoded to one low-rate mono signal, streamed: each packet is decoded, mixed down and
//! decimated, and handed on at once, so memory stays a packet's worth of PCM however long the song.
//! symphonia decodes MP3, AAC and FLAC; Opus packets, which it demuxes but cannot decode, go to
//! `opus`.

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Duration;

use super::BeatError;
use super::opus::{self, OpusPackets};

/// The rate the analysis runs at: beats live below a few kHz, and a quarter of CD rate keeps the
/// spectra small. The real rate is the song's divided by a whole number, as near this as it gets.
pub const TARGET_RATE: f64 = 11_025.0;

/// What turns the track's packets into samples.
enum Packets {
    /// symphonia's decoder, for the codecs it has.
    Symphonia(Box<dyn AudioDecoder>),
    /// Opus, already mono at the analysis' rate (boxed: the decoder's state is kilobytes).
    Opus(Box<OpusPackets>),
}

/// How a decoded song went.
pub struct Decoded {
    /// Seconds decoded (at most the cap).
    pub seconds: f64,
    /// True when decoding stopped at the cap with more song left.
    pub capped: bool,
}

/// Decodes `source` (a song the probe accepted) until its end or `max_seconds`, calling `sink`
/// with each run of mono samples and their rate (the song's over a whole factor). A packet that
/// fails to decode is skipped (players do the same); a song where most do, or none decodes at
/// all, is refused. The first `skip` samples (priming a player hides, counted at the song's own
/// rate: 48 kHz for Opus) are dropped.
pub fn decode(
    source: Box<dyn MediaSource>,
    content_type: &str,
    skip: u64,
    max_seconds: f64,
    sink: &mut dyn FnMut(f64, &[f32]),
) -> Result<Decoded, BeatError> {
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    hint.mime_type(content_type);
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| sym_error(e, "opened"))?;
    // The first audio track, as the song probe (and so the final cut) takes it.
    let (track_id, params, trims) = reader
        .tracks()
        .iter()
        .find_map(|t| match &t.codec_params {
            Some(CodecParameters::Audio(params)) => Some((t.id, params.clone(), t.delay.or(t.padding).is_some())),
            _ => None,
        })
        .ok_or_else(|| BeatError::Undecodable { detail: "it has no audio track".to_string() })?;
    // symphonia ends an MP3 where its Xing header says, or without one where the first frames'
    // bitrate suggests, and trims every frame after that to nothing: a VBR file without a Xing
    // header lost its last fifth (a 3.03 s test song was analysed as 2.43 s). Such a file has
    // no encoder padding to trim (that is a LAME tag's), so every frame it has is decoded, as the
    // probe counted them and a player plays them.
    let untrimmed = content_type == "audio/mpeg" && !trims;
    let mut to_skip = skip;
    let mut packets = if params.codec == CODEC_ID_OPUS {
        // Opus is decoded at 12 kHz, so its pre-skip (counted at 48 kHz) shrinks to match.
        to_skip = skip * u64::from(opus::RATE) / 48_000;
        Packets::Opus(Box::new(OpusPackets::new(params.extra_data.as_deref()).ok_or(BeatError::NoDecoder(
            "an Opus song of more than two channels (only mono and stereo streams are decoded)",
        ))?))
    } else {
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|_| BeatError::NoDecoder("this codec (no decoder is built in)"))?;
        Packets::Symphonia(decoder)
    };

    let mut pcm: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut decim = Decimator::default();
    let (mut good, mut bad) = (0u64, 0u64);
    let mut rate = 0.0;
    let mut source_frames: u64 = 0;
    let mut max_frames = u64::MAX;
    let mut capped = false;
    let mut first_error = None;
    loop {
        let mut packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymError::ResetRequired) => {
                if let Packets::Symphonia(decoder) = &mut packets {
                    decoder.reset();
                }
                continue;
            }
            // The probe read every frame of this file already; a failure now is the source's.
            Err(e) => return Err(sym_error(e, "read")),
        };
        if packet.track_id != track_id {
            continue;
        }
        if untrimmed {
            packet.trim_end = Duration::ZERO;
        }
        // The decoder reads only the packet, so any failure is the packet's: damaged data reads
        // as garbage, a feature the decoder lacks, or a bitstream ending early.
        let decoded = match &mut packets {
            Packets::Symphonia(decoder) => match decoder.decode(&packet) {
                Ok(buf) => {
                    buf.copy_to_vec_interleaved(&mut pcm);
                    let spec = buf.spec();
                    Ok((spec.channels().count().max(1), spec.rate()))
                }
                Err(SymError::ResetRequired) => {
                    decoder.reset();
                    continue;
                }
                Err(e) => Err(e.to_string()),
            },
            Packets::Opus(opus) => opus.decode(&packet.data).map(|samples| {
                pcm.clear();
                pcm.extend_from_slice(samples);
                (1, opus::RATE)
            }),
        };
        let (channels, packet_rate) = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                bad += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        good += 1;
        if rate == 0.0 {
            let song_rate = f64::from(packet_rate);
            decim.factor = ((song_rate / TARGET_RATE).round() as usize).max(1);
            rate = song_rate / decim.factor as f64;
            max_frames = (max_seconds * song_rate) as u64;
        }
        let skipped = usize::try_from(to_skip).unwrap_or(usize::MAX).min(pcm.len() / channels);
        to_skip -= skipped as u64;
        pcm.drain(..skipped * channels);
        let frames = pcm.len() / channels;
        let room = usize::try_from(max_frames - source_frames).unwrap_or(usize::MAX);
        let take = frames.min(room);
        mono.clear();
        let scale = 1.0 / channels as f32;
        for frame in pcm.chunks_exact(channels).take(take) {
            if let Some(sample) = decim.push(frame.iter().sum::<f32>() * scale) {
                mono.push(sample);
            }
        }
        sink(rate, &mono);
        source_frames += take as u64;
        if source_frames >= max_frames {
            // Stopped at the cap: anything after this packet is left unread.
            capped = take < frames || !matches!(reader.next_packet(), Ok(None));
            break;
        }
    }
    // A few damaged frames are skipped; a song mostly damaged is not analysed on what is left.
    if good == 0 || bad > good {
        let why = first_error.map(|m| format!(" ({m})")).unwrap_or_default();
        return Err(BeatError::Undecodable {
            detail: format!("{bad} of its {} audio frames could not be decoded{why}", good + bad),
        });
    }
    let song_rate = rate * decim.factor as f64;
    Ok(Decoded { seconds: source_frames as f64 / song_rate, capped })
}

/// Averages each run of `factor` samples into one: a box filter is a crude anti-alias, but the
/// spectral flux after it only needs where energy rises, not a clean spectrum.
#[derive(Default)]
struct Decimator {
    factor: usize,
    acc: f32,
    count: usize,
}

impl Decimator {
    fn push(&mut self, sample: f32) -> Option<f32> {
        self.acc += sample;
        self.count += 1;
        if self.count < self.factor {
            return None;
        }
        let out = self.acc / self.count as f32;
        self.acc = 0.0;
        self.count = 0;
        Some(out)
    }
}

fn sym_error(e: SymError, doing: &str) -> BeatError {
    match e {
        SymError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => BeatError::Io(io),
        other => BeatError::Undecodable { detail: format!("it could not be {doing} ({other})") },
    }
}
