//! The MP3 frame walker, Huffman decoder and spectrum envelope on the committed clips
//! (tests/media/beats) and on damaged input.

use super::mp3_envelope;
use super::mp3_frames::{self, Bits, GRANULE, Granule, Mp3Error};
use super::mp3_lowband;
use super::mp3_spectrum;
use super::*;
use super::{decode, onset};

fn clip(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/beats").join(name);
    std::fs::read(path).expect("clip")
}

/// The clips re-encoded as MPEG-1 (tests/media/beats/README.md): 44.1 kHz joint stereo VBR, and
/// 32 kHz mono at 48 kb/s. The other clips are MPEG-2 (22.05 kHz), which the walker leaves to
/// symphonia.
const CLIPS: [&str; 2] = ["02_bwv12_7_120_44k.mp3", "01_bwv111_6_60_32k.mp3"];

/// 48 kHz stereo clips whose channels differ (a delay and clicks on the right; README.md), with
/// short blocks and, in the first, unlike blocks in its two channels: mid/side and left/right.
const STEREO_CLIPS: [&str; 2] = ["stereo_48k_ms.mp3", "stereo_48k_lr.mp3"];

/// Wrong code tables never line up: decoding every granule of every channel of the clips to
/// its last line must end exactly at the bit its side information says it ends at
/// (`part2_3_length`), and at no other.
#[test]
fn every_granule_of_the_clips_decodes_to_exactly_its_bits() {
    for name in CLIPS {
        let bytes = clip(name);
        let (mut granules, mut exact) = (0usize, 0usize);
        let blank = Granule::default();
        let walked = mp3_frames::walk(&mut bytes.as_slice(), &mut |frame| {
            let mut bits = Bits::new(frame.main_data);
            let rate = frame.header.sample_rate;
            for gr in 0..2 {
                for ch in 0..frame.header.channels {
                    let scfsi = frame.scfsi(ch);
                    let start = bits.pos;
                    let end = start + frame.side.granules[gr][ch].part2_3_length;
                    let (first, second) = frame.side.granules.split_at_mut(1);
                    let (g, previous) =
                        if gr == 0 { (&mut first[0][ch], &blank) } else { (&mut second[0][ch], &first[0][ch]) };
                    mp3_frames::read_scalefactors(&mut bits, g, &scfsi, gr, previous);
                    let mut lines = [0.0f32; GRANULE];
                    let decoded = mp3_spectrum::decode(&mut bits, end, g, rate, GRANULE, &mut lines);
                    granules += 1;
                    if decoded == Ok(Some(true)) && bits.pos == end {
                        exact += 1;
                    }
                    bits.pos = end;
                }
            }
            true
        })
        .expect("walk");
        assert_eq!(walked.bad, 0, "{name}");
        assert!(granules > 100, "{name}: {granules} granules");
        assert_eq!(exact, granules, "{name}: {exact} of {granules} granules decoded to exactly their bits");
    }
}

/// The spectrum path finds the clips' tempo.
#[test]
fn the_spectrum_envelope_finds_the_clips_tempo() {
    let set: serde_json::Value = serde_json::from_slice(&clip("set.json")).expect("set.json");
    for (track, name) in set["tracks"].as_array().expect("tracks").iter().skip(1).zip(CLIPS.iter().rev()) {
        let bpm = track["tempo_bpm"].as_f64().expect("tempo");
        let bytes = clip(name);
        let len = bytes.len() as u64;
        let source = crate::media::song::SeekableSource::boxed(std::io::Cursor::new(bytes), len);
        let found = analyse_mp3_spectrum(source, DEFAULT_MAX_SONG_SECONDS).expect("analyse");
        let tempo = found.tempo_bpm.expect("a tempo");
        assert!((tempo / bpm - 1.0).abs() <= 0.04, "{name}: {tempo} BPM, truly {bpm}");
    }
}

/// A deterministic byte source (xorshift).
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random bytes, random bytes behind valid headers, and clips cut short or with bits flipped:
/// an error or an envelope, never a panic (the server aborts on one).
#[test]
fn damaged_input_is_an_error_or_skipped_never_a_panic() {
    let mut rng = Bytes(0x9E37_79B9_7F4A_7C15);
    let goods = [clip("02_bwv12_7_120.mp3"), clip("02_bwv12_7_120_44k.mp3"), clip("stereo_48k_ms.mp3")];
    for round in 0..300 {
        let mut data: Vec<u8> = match round % 3 {
            0 => (0..(rng.next() % 20_000) as usize).map(|_| rng.next() as u8).collect(),
            1 => {
                // Frames whose headers parse (MPEG-1 layer 3, 128 kb/s, 44.1 kHz) over garbage.
                let mut d = Vec::new();
                for _ in 0..(rng.next() % 60) {
                    d.extend_from_slice(&[0xFF, 0xFB, 0x90, (rng.next() as u8) & 0xC0]);
                    d.extend((0..413).map(|_| rng.next() as u8));
                }
                d
            }
            _ => {
                let good = &goods[(round / 3) % goods.len()];
                let mut d = good[..(rng.next() as usize % good.len())].to_vec();
                for _ in 0..(rng.next() % 50) {
                    if !d.is_empty() {
                        let at = rng.next() as usize % d.len();
                        d[at] ^= 1 << (rng.next() % 8);
                    }
                }
                d
            }
        };
        if round % 7 == 0 {
            data.truncate(data.len() / 2);
        }
        match mp3_envelope::envelope(&mut data.as_slice(), 900.0) {
            Ok(walk) => assert!(walk.seconds >= 0.0 && walk.envelope.flux.len() == walk.envelope.bass.len()),
            Err(Mp3Error::Io(e)) => panic!("round {round}: a slice cannot fail to read: {e}"),
            Err(Mp3Error::Unsupported(_) | Mp3Error::Damaged(_)) => {}
        }
        let mut samples = 0usize;
        match mp3_lowband::decode(&mut data.as_slice(), 900.0, &mut |_, s: &[f32]| samples += s.len()) {
            Ok(decoded) => assert!(decoded.seconds >= 0.0 && samples < 10_000_000),
            Err(Mp3Error::Io(e)) => panic!("round {round}: a slice cannot fail to read: {e}"),
            Err(Mp3Error::Unsupported(_) | Mp3Error::Damaged(_)) => {}
        }
    }
}

/// MPEG-2 (half-rate) frames and layer 2 are left to symphonia, said so.
#[test]
fn frames_the_walker_does_not_read_are_unsupported() {
    let mpeg2 = clip("02_bwv12_7_120.mp3");
    assert!(matches!(mp3_envelope::envelope(&mut mpeg2.as_slice(), 900.0), Err(Mp3Error::Unsupported(_))));
    for header in [[0xFF, 0xF3, 0x90, 0x00], [0xFF, 0xFD, 0x90, 0x00]] {
        let mut data = header.to_vec();
        data.resize(2000, 0);
        assert!(matches!(mp3_envelope::envelope(&mut data.as_slice(), 900.0), Err(Mp3Error::Unsupported(_))));
    }
}

/// symphonia's whole decode of an MP3, mixed to mono at the song's rate (its priming trimmed, as
/// symphonia trims it): the reference the low-band decoder is checked against.
fn symphonia_mono(bytes: &[u8]) -> (f64, Vec<f32>) {
    use symphonia::core::codecs::CodecParameters;
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
    use symphonia::core::meta::MetadataOptions;
    let len = bytes.len() as u64;
    let source = crate::media::song::SeekableSource::boxed(std::io::Cursor::new(bytes.to_vec()), len);
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    hint.mime_type("audio/mpeg");
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .expect("probe");
    let params = reader
        .tracks()
        .iter()
        .find_map(|t| match &t.codec_params {
            Some(CodecParameters::Audio(params)) => Some(params.clone()),
            _ => None,
        })
        .expect("an audio track");
    let mut decoder =
        symphonia::default::get_codecs().make_audio_decoder(&params, &AudioDecoderOptions::default()).expect("decoder");
    let (mut pcm, mut mono, mut rate) = (Vec::new(), Vec::new(), 0.0);
    while let Ok(Some(packet)) = reader.next_packet() {
        let buf = decoder.decode(&packet).expect("decode");
        buf.copy_to_vec_interleaved(&mut pcm);
        let channels = buf.spec().channels().count();
        rate = f64::from(buf.spec().rate());
        mono.extend(pcm.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32));
    }
    (rate, mono)
}

/// The low-band decoder's output for a clip, keeping `bands` (None: as the analysis does).
fn lowband(bytes: &[u8], bands: Option<(usize, usize)>) -> (f64, Vec<f32>) {
    let (mut rate, mut out) = (0.0, Vec::new());
    mp3_lowband::decode_bands(&mut &bytes[..], 900.0, bands, &mut |r, s: &[f32]| {
        rate = r;
        out.extend_from_slice(s);
    })
    .expect("decode");
    (rate, out)
}

/// Pearson correlation of two signals over their common length.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let mean = |x: &[f32]| x[..n].iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

/// With every subband kept and every sample output, the low-band decoder is a whole layer-3
/// decoder: its mono mix must be symphonia's, sample for sample (to float rounding), on the
/// joint-stereo 44.1 kHz clip and the mono 32 kHz one. This checks the stereo mix, alias
/// reduction, IMDCT and windows of every block type, overlap, frequency inversion, the
/// synthesis and the priming against an independent decoder.
#[test]
fn every_subband_kept_the_lowband_decoder_is_symphonias_decoder() {
    for name in CLIPS.iter().chain(&STEREO_CLIPS) {
        assert_whole_decode_is_symphonias(name, &clip(name));
    }
}

/// The same on any MP3s (`MV_LOWBAND_FILES`, paths separated by spaces), with the block types and
/// stereo modes they hold: `cargo test --lib whole_decode_of_files -- --ignored --nocapture`.
#[test]
#[ignore]
fn whole_decode_of_files_is_symphonias() {
    for path in std::env::var("MV_LOWBAND_FILES").unwrap_or_default().split_whitespace() {
        assert_whole_decode_is_symphonias(path, &std::fs::read(path).expect("read"));
    }
}

fn assert_whole_decode_is_symphonias(name: &str, bytes: &[u8]) {
    // What the clip holds: granules by block type (and mixed), stereo modes, unlike blocks.
    let (mut types, mut ms, mut unlike) = ([0usize; 5], 0usize, 0usize);
    mp3_frames::walk(&mut &bytes[..], &mut |frame| {
        ms += usize::from(frame.header.mid_side);
        for gr in &frame.side.granules {
            for g in gr.iter().take(frame.header.channels) {
                types[if g.mixed { 4 } else { usize::from(g.block_type) }] += 1;
            }
            unlike += usize::from(frame.header.channels == 2 && gr[0].block_type != gr[1].block_type);
        }
        true
    })
    .expect("walk");
    let (rate, reference) = symphonia_mono(bytes);
    let (our_rate, ours) = lowband(bytes, Some((1, 32)));
    assert_eq!(rate, our_rate, "{name}");
    // symphonia also trims the encoder's padding at the end.
    assert!(ours.len() >= reference.len() && ours.len() - reference.len() < 2 * GRANULE, "{name}");
    let peak = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = reference.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!(
        "{name}: largest difference {worst:e}, peak {peak}; granules by block type (normal, start, short, stop, mixed) {types:?}, {ms} mid/side frames, {unlike} granules with unlike blocks"
    );
    assert!(peak > 0.05, "{name}: peak {peak}");
    assert!(worst < 1e-5, "{name}: largest difference {worst} (peak {peak})");
}

/// As the analysis runs it (the lowest 32/d subbands, one sample in d), the signal is symphonia's
/// whole decode low-passed at the analysis rate's Nyquist frequency and sampled at the same
/// instants, and the onset envelopes of the two agree.
#[test]
fn the_lowband_signal_is_the_whole_decode_low_passed() {
    for name in CLIPS {
        let bytes = clip(name);
        let (rate, reference) = symphonia_mono(&bytes);
        let (low_rate, ours) = lowband(&bytes, None);
        let d = (rate / low_rate).round() as usize;
        assert!((rate / d as f64 - low_rate).abs() < 1e-9, "{name}");
        // A windowed-sinc low-pass (Blackman, 255 taps) at 0.45 of the low rate.
        let cutoff = 0.45 / d as f64;
        let half = 127i64;
        let taps: Vec<f64> = (-half..=half)
            .map(|n| {
                let x = n as f64;
                let sinc = if n == 0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
                };
                let w = 0.42
                    + 0.5 * (std::f64::consts::PI * x / half as f64).cos()
                    + 0.08 * (2.0 * std::f64::consts::PI * x / half as f64).cos();
                sinc * w
            })
            .collect();
        let filtered: Vec<f32> = (0..reference.len() / d)
            .map(|m| {
                let centre = (m * d) as i64;
                let mut acc = 0.0;
                for (i, t) in taps.iter().enumerate() {
                    let at = centre + i as i64 - half;
                    if at >= 0 && (at as usize) < reference.len() {
                        acc += t * f64::from(reference[at as usize]);
                    }
                }
                acc as f32
            })
            .collect();
        let r = correlation(&ours, &filtered);
        assert!(r > 0.97, "{name}: correlation {r} with symphonia's decode low-passed");
        // The same envelope code on both: symphonia's path as `analyse` runs it.
        let mut theirs = onset::OnsetEnvelope::new();
        let len = bytes.len() as u64;
        let source = crate::media::song::SeekableSource::boxed(std::io::Cursor::new(bytes.clone()), len);
        let decoded =
            decode::decode(source, "audio/mpeg", 0, 900.0, &mut |r, s: &[f32]| theirs.push(r, s)).expect("decode");
        let mut mine = onset::OnsetEnvelope::new();
        mine.push(low_rate, &ours);
        let (theirs, mine) = (theirs.finish(decoded.seconds), mine.finish(decoded.seconds));
        let r = correlation(&theirs.flux, &mine.flux);
        assert!(r > 0.9, "{name}: onset envelopes' correlation {r}");
        eprintln!("{name}: signal r {:.4}, envelope r {r:.4}", correlation(&ours, &filtered));
    }
}

/// Channels with unlike blocks (which LAME never writes: it switches both channels together, so
/// no clip has them) go through an IMDCT each, into one mono overlap: granule after granule, the
/// output is the mean of each channel decoded alone, its own overlap carried on.
#[test]
fn channels_with_unlike_blocks_mix_as_each_decoded_alone() {
    let mut rng = Bytes(0x2545_F491_4F6C_DD1D);
    let (mut both, mut left, mut right) = (
        mp3_lowband::LowBand::new(44_100, 1105, 4, 8),
        mp3_lowband::LowBand::new(44_100, 1105, 4, 8),
        mp3_lowband::LowBand::new(44_100, 1105, 4, 8),
    );
    // Left: normal, start, short, short, stop, normal; right: normal throughout, then mixed.
    let kinds = [(0, false), (1, false), (2, false), (2, false), (3, false), (0, false)];
    let right_kinds = [(0, false), (0, false), (0, false), (2, true), (2, true), (0, false)];
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (&(lt, lm), &(rt, rm)) in kinds.iter().zip(&right_kinds) {
        let g = |block_type, mixed| {
            let mut g = Granule::default();
            (g.block_type, g.mixed) = (block_type, mixed);
            g
        };
        let (gl, gr) = (g(lt, lm), g(rt, rm));
        let mut line = || ((rng.next() % 2001) as f32 - 1000.0) / 1000.0;
        let l: [f32; GRANULE] = std::array::from_fn(|_| line());
        let r: [f32; GRANULE] = std::array::from_fn(|_| line());
        both.begin();
        both.add(&l, &gl, 0.5);
        both.add(&r, &gr, 0.5);
        both.finish(&mut a);
        left.begin();
        left.add(&l, &gl, 1.0);
        left.finish(&mut b);
        right.begin();
        right.add(&r, &gr, 1.0);
        right.finish(&mut c);
    }
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 500, "{} samples", a.len());
    let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.01, "peak {peak}");
    for (i, ((x, y), z)) in a.iter().zip(&b).zip(&c).enumerate() {
        assert!((x - (y + z) / 2.0).abs() <= 1e-5 * peak.max(1.0), "sample {i}: {x} against {}", (y + z) / 2.0);
    }
}

/// `analyse_mp3_coded`: the MPEG-1 clips stay on the coded spectrum, with their tempo and a clear
/// beat; an MPEG-2 clip, which the walker does not read, is decoded instead and still analysed;
/// silence is silence whichever way it went.
#[test]
fn the_coded_path_keeps_clear_clips_and_hands_on_the_rest() {
    let analyse = |name: &str| {
        let bytes = clip(name);
        let len = bytes.len() as u64;
        let boxed = |b: Vec<u8>| crate::media::song::SeekableSource::boxed(std::io::Cursor::new(b), len);
        let info = crate::media::song::probe(boxed(bytes.clone())).expect("probe");
        analyse_mp3_coded(boxed(bytes), &info, DEFAULT_MAX_SONG_SECONDS).expect("analyse")
    };
    let set: serde_json::Value = serde_json::from_slice(&clip("set.json")).expect("set.json");
    for (track, name) in set["tracks"].as_array().expect("tracks").iter().skip(1).zip(CLIPS.iter().rev()) {
        let bpm = track["tempo_bpm"].as_f64().expect("tempo");
        let (found, path, clarity) = analyse(name);
        assert_eq!(path, Mp3Path::Spectrum, "{name}");
        assert!(clarity.is_some_and(|c| c >= MIN_CLARITY), "{name}: clarity {clarity:?}");
        let tempo = found.tempo_bpm.expect("a tempo");
        assert!((tempo / bpm - 1.0).abs() <= 0.04, "{name}: {tempo} BPM, truly {bpm}");
    }
    let (found, path, _) = analyse("00_bwv1_6_180.mp3");
    assert_eq!(path, Mp3Path::Fallback, "MPEG-2 is symphonia's");
    assert!(found.beats.len() > 8, "{found:?}");
    let (found, _, _) = analyse("silence.mp3");
    assert!(
        found.beats.is_empty() && found.analysis_note.as_deref().is_some_and(|n| n.contains("silent")),
        "{found:?}"
    );
}
