//! A minimal MP4 holding only a song's audio track (ftyp, moov, mdat), written with `mp4-atom`
//! from `media::song::SongTrack`, so ffmpeg can check the sample entry and frames before the real
//! muxer (the final cut) exists. Test-only: one chunk, no edit list, `moov` first.

use mp4_atom::{
    Dinf, Dref, DrefEntry, Encode, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Minf, Moov, Mvhd, Smhd, Stbl, Stco, Stsc,
    StscEntry, Stsd, Stsz, StszSamples, Stts, SttsEntry, Tkhd, Trak, Url,
};
use mvgen::media::song::SongTrack;

/// The song's track as a whole MP4 file.
pub fn song_mp4(mut track: SongTrack) -> Vec<u8> {
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    let mut stts: Vec<SttsEntry> = Vec::new();
    while let Some(frame) = track.next_frame().expect("the song's frames") {
        data.extend_from_slice(&frame.data);
        sizes.push(frame.data.len() as u32);
        match stts.last_mut() {
            Some(last) if last.sample_delta == frame.duration => last.sample_count += 1,
            _ => stts.push(SttsEntry { sample_count: 1, sample_delta: frame.duration }),
        }
    }
    let duration: u64 = stts.iter().map(|e| u64::from(e.sample_count) * u64::from(e.sample_delta)).sum();
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 512,
        compatible_brands: vec![FourCC::new(b"isom"), FourCC::new(b"iso2"), FourCC::new(b"mp41")],
    };
    let moov = |chunk_offset: u32| Moov {
        mvhd: Mvhd {
            timescale: track.timescale,
            duration,
            rate: mp4_atom::FixedPoint::new(1, 0),
            volume: mp4_atom::FixedPoint::new(1, 0),
            next_track_id: 2,
            ..Default::default()
        },
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: 1,
                duration,
                enabled: true,
                in_movie: true,
                volume: mp4_atom::FixedPoint::new(1, 0),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd { timescale: track.timescale, duration, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: FourCC::new(b"soun"), name: "SoundHandler".into() },
                minf: Minf {
                    smhd: Some(Smhd::default()),
                    dinf: Dinf { dref: Dref { entries: vec![DrefEntry::Url(Url::default())] } },
                    stbl: Stbl {
                        stsd: Stsd { codecs: vec![track.entry.clone()] },
                        stts: Stts { entries: stts.clone() },
                        stsc: Stsc {
                            entries: vec![StscEntry {
                                first_chunk: 1,
                                samples_per_chunk: sizes.len() as u32,
                                sample_description_index: 1,
                            }],
                        },
                        stsz: Stsz { samples: StszSamples::Different { sizes: sizes.clone() } },
                        stco: Some(Stco { entries: vec![chunk_offset] }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut head = Vec::new();
    ftyp.encode(&mut head).expect("ftyp");
    // The chunk offset is the mdat payload's position, known once moov's size is: moov's size
    // does not depend on the offset's value, so encode it twice.
    let mut probe = Vec::new();
    moov(0).encode(&mut probe).expect("moov");
    let offset = (head.len() + probe.len() + 8) as u32;
    moov(offset).encode(&mut head).expect("moov");
    Mdat { data }.encode(&mut head).expect("mdat");
    head
}
