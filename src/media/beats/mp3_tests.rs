//! The MP3 frame walker, Huffman decoder and spectrum envelope on the committed clips
//! (tests/media/beats) and on damaged input.

use super::mp3_envelope;
use super::mp3_frames::{self, Bits, GRANULE, Granule, Mp3Error};
use super::mp3_spectrum;
use super::*;

fn clip(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/beats").join(name);
    std::fs::read(path).expect("clip")
}

/// The clips re-encoded as MPEG-1 (tests/media/beats/README.md): 44.1 kHz joint stereo VBR, and
/// 32 kHz mono at 48 kb/s. The other clips are MPEG-2 (22.05 kHz), which the walker leaves to
/// symphonia.
const CLIPS: [&str; 2] = ["02_bwv12_7_120_44k.mp3", "01_bwv111_6_60_32k.mp3"];

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
    let good = clip("02_bwv12_7_120.mp3");
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
