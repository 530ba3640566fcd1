//! The MP4 sample entry each accepted codec is described by, built from what the demuxer read
//! (AAC's AudioSpecificConfig, Opus' `OpusHead`, FLAC's STREAMINFO), and the codec facts the
//! frames need (an Opus packet's duration from its TOC byte).

use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor};
use mp4_atom::{Audio, Codec, Dfla, Dops, Esds, FixedPoint, Mp4a};

/// MPEG-4 systems' objectTypeIndication for AAC (ISO/IEC 14496-3 audio).
const OTI_AAC: u8 = 0x40;
/// objectTypeIndication for MPEG-1 audio (MP3): what browsers and ffmpeg read MP3-in-MP4 as,
/// inside `mp4a`; the QuickTime `.mp3` entry plays in fewer places.
const OTI_MP3: u8 = 0x6B;
/// streamType AudioStream.
const AUDIO_STREAM: u8 = 0x05;

/// The `Audio` fields every audio sample entry starts with. The entry's rate is 16.16 fixed point,
/// so a rate past 65535 Hz is written as 0 there (players read the codec's own config instead).
fn audio(sample_rate: u32, channels: u16) -> Audio {
    Audio {
        data_reference_index: 1,
        channel_count: channels,
        sample_size: 16,
        sample_rate: FixedPoint::new(u16::try_from(sample_rate).unwrap_or(0), 0),
    }
}

/// `mp4a` with an `esds` naming the codec; AAC carries its AudioSpecificConfig, MP3 none.
fn mp4a(sample_rate: u32, channels: u16, object_type_indication: u8, config: Option<Vec<u8>>) -> Codec {
    let dec_specific = config.map(|raw| DecoderSpecific { raw, ..Default::default() });
    Codec::Mp4a(Mp4a {
        audio: audio(sample_rate, channels),
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: 1,
                dec_config: DecoderConfig {
                    object_type_indication,
                    stream_type: AUDIO_STREAM,
                    dec_specific,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    })
}

pub fn aac(sample_rate: u32, channels: u16, audio_specific_config: Vec<u8>) -> Codec {
    mp4a(sample_rate, channels, OTI_AAC, Some(audio_specific_config))
}

pub fn mp3(sample_rate: u32, channels: u16) -> Codec {
    mp4a(sample_rate, channels, OTI_MP3, None)
}

/// The AudioSpecificConfig an ADTS stream implies: its header carries the same three fields
/// (profile, rate index, channels) that an M4A keeps once in its `esds`.
pub fn adts_audio_specific_config(adts_header: &[u8]) -> Option<Vec<u8>> {
    let h = adts_header.get(..4)?;
    let object_type = (h[2] >> 6) + 1;
    let rate_index = (h[2] >> 2) & 0x0F;
    let channels = ((h[2] & 0x01) << 2) | (h[3] >> 6);
    let config = (u16::from(object_type) << 11) | (u16::from(rate_index) << 7) | (u16::from(channels) << 3);
    Some(config.to_be_bytes().to_vec())
}

/// What an `OpusHead` (RFC 7845 §5.1) says, the fields `dOps` repeats.
pub struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_sample_rate: u32,
    pub output_gain: i16,
    pub mapping: Option<mp4_atom::OpusChannelMapping>,
}

impl OpusHead {
    pub fn parse(head: &[u8]) -> Option<OpusHead> {
        if !head.starts_with(b"OpusHead") || head.len() < 19 {
            return None;
        }
        let family = head[18];
        let channels = head[9];
        let mapping = if family == 0 {
            None
        } else {
            let table = head.get(21..21 + usize::from(channels))?;
            Some(mp4_atom::OpusChannelMapping {
                family,
                stream_count: *head.get(19)?,
                coupled_count: *head.get(20)?,
                channel_mapping: table.to_vec(),
            })
        };
        Some(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([head[10], head[11]]),
            input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
            output_gain: i16::from_le_bytes([head[16], head[17]]),
            mapping,
        })
    }
}

/// Opus in MP4 (the Opus-in-ISOBMFF spec): the entry's rate is always 48 kHz.
pub fn opus(head: &OpusHead) -> Codec {
    Codec::Opus(mp4_atom::Opus {
        audio: audio(48_000, u16::from(head.channels)),
        dops: Dops {
            output_channel_count: head.channels,
            pre_skip: head.pre_skip,
            input_sample_rate: head.input_sample_rate,
            output_gain: head.output_gain,
            channel_mapping: head.mapping.clone(),
        },
        btrt: None,
    })
}

/// The samples per channel an Opus packet holds at 48 kHz, from its TOC byte and, for code 3,
/// its frame count (RFC 6716 §3.1); `None` for an empty or malformed packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let samples = frame * frames;
    // A packet holds at most 120 ms (RFC 6716 §3.2.5).
    (frames > 0 && samples <= 5760).then_some(samples)
}

/// Samples per channel in an AAC frame (AAC-LC; HE-AAC's are counted at its core rate).
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// Samples per channel in an MPEG audio layer III frame, from its header: 1152 for MPEG-1, 576 for
/// MPEG-2 and 2.5 (ISO/IEC 11172-3, 13818-3).
pub fn mp3_frame_samples(frame: &[u8]) -> Option<u32> {
    let b = *frame.get(1)?;
    match (b >> 3) & 0x03 {
        0b11 => Some(1152),
        0b10 | 0b00 => Some(576),
        _ => None,
    }
}

/// FLAC in MP4 (the FLAC-in-ISOBMFF spec): `dfLa` holds the STREAMINFO block; the entry's rate is
/// the stream's.
pub fn flac(stream_info: &[u8]) -> Option<Codec> {
    let s = stream_info.get(..34)?;
    let packed = u64::from_be_bytes(s[10..18].try_into().ok()?);
    let sample_rate = (packed >> 44) as u32;
    let channels_minus_one = ((packed >> 41) & 0x07) as u8;
    let block = mp4_atom::FlacMetadataBlock::StreamInfo {
        minimum_block_size: u16::from_be_bytes([s[0], s[1]]),
        maximum_block_size: u16::from_be_bytes([s[2], s[3]]),
        minimum_frame_size: mp4_atom::u24::from([s[4], s[5], s[6]]),
        maximum_frame_size: mp4_atom::u24::from([s[7], s[8], s[9]]),
        sample_rate,
        num_channels_minus_one: channels_minus_one,
        bits_per_sample_minus_one: ((packed >> 36) & 0x1F) as u8,
        number_of_interchannel_samples: packed & 0x0F_FFFF_FFFF,
        md5_checksum: s[18..34].to_vec(),
    };
    Some(Codec::Flac(mp4_atom::Flac {
        audio: audio(sample_rate, u16::from(channels_minus_one) + 1),
        dfla: Dfla { blocks: vec![block] },
    }))
}

/// Samples in a FLAC frame, from its own header (RFC 9639, 9.1): the block size code, with the
/// 8- or 16-bit size after the coded frame number for codes 6 and 7. `None` when the bytes are
/// not a frame header (no sync code, a reserved code). A container's figure can lie; this can't
/// without the frame failing to decode.
pub fn flac_frame_samples(frame: &[u8]) -> Option<u32> {
    let (head, rest) = frame.split_first_chunk::<3>()?;
    let [a, b, code_byte] = *head;
    if a != 0xFF || b & 0xFE != 0xF8 {
        return None;
    }
    let code = code_byte >> 4;
    match code {
        0 => None,
        1 => Some(192),
        2..=5 => Some(576 << (code - 2)),
        8..=15 => Some(256 << (code - 8)),
        _ => {
            // The coded frame (or sample) number, UTF-8 style: 1 to 7 bytes, its first byte's
            // leading ones say how many; then the channel/sample-size byte comes before it.
            let lead = rest.get(1)?.leading_ones() as usize;
            let number = match lead {
                0 => 1,
                2..=7 => lead,
                _ => return None,
            };
            let at = 1 + number;
            let size = if code == 6 {
                u32::from(*rest.get(at)?)
            } else {
                u32::from(u16::from_be_bytes([*rest.get(at)?, *rest.get(at + 1)?]))
            };
            Some(size + 1)
        }
    }
}

/// The total samples a STREAMINFO block declares (0 when the encoder did not know).
pub fn flac_total_samples(stream_info: &[u8]) -> Option<u64> {
    let packed = u64::from_be_bytes(stream_info.get(10..18)?.try_into().ok()?);
    Some(packed & 0x0F_FFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_toc_durations() {
        // config 19 (CELT, 20 ms), code 0: one frame.
        assert_eq!(opus_packet_samples(&[19 << 3]), Some(960));
        // SILK 60 ms, code 1: two frames.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 1]), Some(5760));
        // code 3 with 3 frames of 20 ms.
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 3]), Some(2880));
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 0]), None);
    }

    #[test]
    fn adts_header_gives_the_audio_specific_config() {
        // The song.aac fixture's first header: AAC-LC, 48 kHz (index 3), stereo.
        assert_eq!(adts_audio_specific_config(&[0xFF, 0xF1, 0x4C, 0x80]), Some(vec![0x11, 0x90]));
    }
}
