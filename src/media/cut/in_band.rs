//! Parameter sets repeated in-band where a cut's video switches sample entry. Clips from two
//! encoders keep their own `avc1` entries, as ISO/IEC 14496-15 allows; but a decoder (or a
//! parser ahead of it, as ffmpeg's is) that does not switch its SPS and PPS with the entry would
//! read the next clip's slices with the last clip's, and both usually number theirs 0. The entry's
//! SPS and PPS NAL units put at the head of the first sample after the switch make every reader
//! see the change: the sample then starts with the very parameter sets its entry names.

use mp4_atom::Codec;

/// The SPS and PPS NAL units of an `avc1`/`avc3` entry, each with the length prefix its samples
/// use; `None` for other codecs (nothing is added).
pub fn parameter_sets(entry: &Codec) -> Option<Vec<u8>> {
    let avcc = match entry {
        Codec::Avc1(avc1) => &avc1.avcc,
        Codec::Avc3(avc3) => &avc3.avcc,
        _ => return None,
    };
    let width = usize::from(avcc.length_size);
    if !(1..=4).contains(&width) {
        return None;
    }
    let mut bytes = Vec::new();
    for nal in avcc.sequence_parameter_sets.iter().chain(&avcc.picture_parameter_sets) {
        let len = u32::try_from(nal.len()).ok().filter(|&l| width == 4 || l < 1 << (8 * width))?;
        bytes.extend_from_slice(&len.to_be_bytes()[4 - width..]);
        bytes.extend_from_slice(nal);
    }
    Some(bytes)
}
