//! Each accepted format from a small fixture (tests/media/songs, README there says how they
//! were made), checked against ffprobe's figures, and the ways a song is refused.

use std::io::Cursor;

use mp4_atom::Encode;

use super::*;

fn source(bytes: &[u8]) -> Box<dyn MediaSource> {
    let len = bytes.len() as u64;
    SeekableSource::boxed(Cursor::new(bytes.to_vec()), len)
}

struct Expected {
    file: &'static [u8],
    codec: SongCodec,
    container: &'static str,
    content_type: &'static str,
    sample_rate: u32,
    channels: u16,
    /// ffprobe's packet count (`ffprobe -count_packets -select_streams a:0 -show_entries
    /// stream=nb_read_packets`) times the samples each packet holds (1152 for MPEG-1 layer III,
    /// 1024 for AAC, 960 for these 20 ms Opus packets): the duration before any trimming.
    samples: u64,
}

const FIXTURES: &[Expected] = &[
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.mp3"),
        codec: SongCodec::Mp3,
        container: "mp3",
        content_type: "audio/mpeg",
        sample_rate: 44100,
        channels: 1,
        samples: 116 * 1152,
    },
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.aac"),
        codec: SongCodec::Aac,
        container: "adts",
        content_type: "audio/aac",
        sample_rate: 48000,
        channels: 2,
        samples: 142 * 1024,
    },
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.m4a"),
        codec: SongCodec::Aac,
        container: "mp4",
        content_type: "audio/mp4",
        sample_rate: 44100,
        channels: 1,
        samples: 131 * 1024,
    },
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.opus"),
        codec: SongCodec::Opus,
        container: "ogg",
        content_type: "audio/ogg",
        sample_rate: 48000,
        channels: 2,
        samples: 151 * 960,
    },
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.webm"),
        codec: SongCodec::Opus,
        container: "webm",
        content_type: "audio/webm",
        sample_rate: 48000,
        channels: 1,
        samples: 151 * 960,
    },
    Expected {
        file: include_bytes!("../../../tests/media/songs/song.flac"),
        codec: SongCodec::Flac,
        container: "flac",
        content_type: "audio/flac",
        sample_rate: 22050,
        channels: 1,
        // ffprobe: 20 packets, 2.000000 s: 19 blocks of 2304 and a short last one.
        samples: 44100,
    },
];

#[test]
fn every_accepted_format_is_read_as_ffprobe_reads_it() {
    for want in FIXTURES {
        let info = probe(source(want.file)).unwrap_or_else(|e| panic!("{}: {e}", want.container));
        assert_eq!(info.codec, want.codec, "{}", want.container);
        assert_eq!(info.container, want.container);
        assert_eq!(info.content_type, want.content_type);
        assert_eq!((info.sample_rate, info.channels), (want.sample_rate, want.channels), "{}", want.container);
        // What plays: the frames less the priming the file declares.
        let priming = SongTrack::open(source(want.file)).unwrap().priming;
        let expected = (want.samples - u64::from(priming)) as f64 / f64::from(want.sample_rate);
        assert!(
            (info.duration_seconds - expected).abs() < 1e-9,
            "{}: {} s, ffprobe {expected} s",
            want.container,
            info.duration_seconds
        );

        let mut track = SongTrack::open(source(want.file)).unwrap();
        assert_eq!(track.info, info);
        assert_eq!(track.timescale, want.sample_rate);
        let mut sum = 0u64;
        let mut frames = 0;
        while let Some(frame) = track.next_frame().unwrap() {
            assert!(!frame.data.is_empty());
            sum += u64::from(frame.duration);
            frames += 1;
        }
        assert!(frames > 10, "{}", want.container);
        assert_eq!(sum, want.samples, "{}: the frames' durations sum to the duration", want.container);
        assert_eq!(track.next_frame().unwrap(), None, "stays ended");

        let mut encoded = Vec::new();
        track.entry.encode(&mut encoded).unwrap_or_else(|e| panic!("{}: {e}", want.container));
        assert!(encoded.len() > 36, "{}", want.container);
    }
}

#[test]
fn frames_are_mp4_samples() {
    let adts = &FIXTURES[1];
    let mut track = SongTrack::open(source(adts.file)).unwrap();
    let first = track.next_frame().unwrap().unwrap();
    // The ADTS header (FF F1 …, 7 bytes) is not part of the sample.
    assert_eq!(first.data[..], adts.file[7..7 + first.data.len()]);
    let mp3 = &FIXTURES[0];
    let mut track = SongTrack::open(source(mp3.file)).unwrap();
    let first = track.next_frame().unwrap().unwrap();
    assert_eq!(&first.data[..2], &[0xFF, 0xFB], "an MP3 frame keeps its header");
    let opus = SongTrack::open(source(FIXTURES[3].file)).unwrap();
    assert_eq!(opus.priming, 312, "ffprobe: skip_samples=312");
    let m4a = SongTrack::open(source(FIXTURES[2].file)).unwrap();
    assert_eq!(m4a.priming, 1024, "ffprobe: skip_samples=1024 (the edit list's media time)");
    let adts = SongTrack::open(source(FIXTURES[1].file)).unwrap();
    assert_eq!(adts.priming, 0, "ADTS says nothing of its priming");
}

fn refusal(bytes: &[u8]) -> SongError {
    match probe(source(bytes)) {
        Ok(info) => panic!("accepted: {info:?}"),
        Err(err) => err,
    }
}

#[test]
fn wav_a_video_and_other_files_are_not_accepted() {
    let wav = include_bytes!("../../../tests/media/songs/song.wav");
    let err = refusal(wav);
    assert!(matches!(err, SongError::NotAccepted { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the song is WAV (RIFF/WAVE); accepted: MP3, AAC (M4A or ADTS), Opus (Ogg or WebM), FLAC"
    );
    let clip = include_bytes!("../../../assets/mock-clip.mp4");
    let err = refusal(clip);
    assert!(matches!(err, SongError::NotAccepted { .. }), "{err}");
    assert!(err.to_string().starts_with("the song is a video file (MP4 with a video track)"), "{err}");
    assert!(refusal(b"just some text\n").to_string().starts_with("the song is text;"));
    assert!(refusal(b"").to_string().starts_with("the song is an empty file;"));
}

#[test]
fn a_song_cut_short_or_damaged_is_corrupt() {
    for want in FIXTURES {
        let len = want.file.len();
        for cut in [len * 2 / 3 + 1, len - 1] {
            let err = refusal(&want.file[..cut]);
            assert!(matches!(err, SongError::Corrupt { .. }), "{} cut at {cut}/{len}: {err}", want.container);
            assert!(err.to_string().starts_with("the song is truncated or corrupt: "), "{err}");
        }
        // A valid start, then noise where the frames should be.
        let mut damaged = want.file[..len / 3].to_vec();
        damaged.extend((0..len / 3).map(|i| (i * 7919 % 251) as u8));
        let err = refusal(&damaged);
        assert!(matches!(err, SongError::Corrupt { .. }), "{} with noise: {err}", want.container);
    }
}

#[test]
fn a_header_with_no_frames_is_corrupt() {
    let mp3 = FIXTURES[0].file;
    // The ID3 tag alone (20 bytes in the fixture).
    let err = refusal(&mp3[..20]);
    assert!(matches!(err, SongError::Corrupt { .. }), "{err}");
    let flac = FIXTURES[5].file;
    let err = refusal(&flac[..42]);
    assert!(matches!(err, SongError::Corrupt { .. }), "{err}");
}

/// Damaged songs (bytes overwritten, often in the headers; often cut short too) are refused or
/// read, never a panic: the release build aborts on a panic, so one would take the server down.
#[test]
fn damaged_songs_never_panic() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for want in FIXTURES {
        for round in 0..300 {
            let mut bytes = want.file.to_vec();
            for _ in 0..1 + next() % 8 {
                let span = if next() % 2 == 0 { bytes.len().min(128) } else { bytes.len() };
                let at = (next() as usize) % span;
                bytes[at] = next() as u8;
            }
            if next() % 3 == 0 {
                bytes.truncate(((next() as usize) % bytes.len()).max(1));
            }
            let read = std::panic::catch_unwind(|| {
                let _ = probe(source(&bytes));
                if let Ok(mut track) = SongTrack::open(source(&bytes)) {
                    while let Ok(Some(_)) = track.next_frame() {}
                }
            });
            assert!(read.is_ok(), "{} round {round} panicked", want.container);
        }
    }
}

#[test]
fn a_flac_frame_says_its_own_length() {
    // Sync, fixed blocking; block size code 12 (4096), a one-byte frame number.
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0xC9, 0x08, 0x00, 0x00]), Some(4096));
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0x19, 0x08, 0x00]), Some(192));
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0x59, 0x08, 0x00]), Some(4608));
    // Code 6: an 8-bit size less one after the frame number (here two bytes, 0xC2 0x80).
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF9, 0x69, 0x08, 0xC2, 0x80, 0x43, 0x00]), Some(0x44));
    // Code 7: a 16-bit size less one.
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0x79, 0x08, 0x13, 0x01, 0x43, 0x00]), Some(0x144));
    // Not a frame: no sync, the reserved code 0, cut before its size.
    assert_eq!(entry::flac_frame_samples(&[0x00, 0xF8, 0xC9, 0x08, 0x00]), None);
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0x09, 0x08, 0x00]), None);
    assert_eq!(entry::flac_frame_samples(&[0xFF, 0xF8, 0x79, 0x08, 0x13, 0x01]), None);
}
