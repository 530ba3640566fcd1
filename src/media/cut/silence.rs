//! Silent AAC-LC frames, for the stretch of a cut where a clip has no audio between clips that
//! have: the audio track stays one gapless run (an empty edit in the middle of a track is not
//! honoured by every player), and a silent frame is a handful of bytes.
//!
//! A raw AAC frame (ISO/IEC 14496-3 §4.4.2) holding one single-channel element (mono) or one
//! channel-pair element (stereo) whose channel streams have no scale-factor bands (`max_sfb` 0):
//! every spectral coefficient is zero, so any decoder outputs silence. Then the END element.

use mp4_atom::Codec;

/// Samples per AAC-LC frame.
pub const AAC_FRAME: u32 = 1024;

/// A silent frame for the stream `entry` describes, when it is AAC-LC mono or stereo; `None` for
/// any other audio (the caller refuses such a cut rather than guess).
pub fn silent_frame(entry: &Codec) -> Option<Vec<u8>> {
    let Codec::Mp4a(mp4a) = entry else { return None };
    let config = mp4a.esds.es_desc.dec_config.dec_specific.as_ref()?;
    // Audio object type 2 is AAC-LC; 0x40 is MPEG-4 audio in the decoder config.
    if mp4a.esds.es_desc.dec_config.object_type_indication != 0x40 || config.profile != 2 {
        return None;
    }
    let mut bits = Bits::default();
    match config.chan_conf {
        1 => {
            bits.put(0b000, 3); // single_channel_element
            bits.put(0, 4); // element_instance_tag
            silent_channel_stream(&mut bits);
        }
        2 => {
            bits.put(0b001, 3); // channel_pair_element
            bits.put(0, 4); // element_instance_tag
            bits.put(0, 1); // common_window: each channel has its own ics_info
            silent_channel_stream(&mut bits);
            silent_channel_stream(&mut bits);
        }
        _ => return None,
    }
    bits.put(0b111, 3); // END
    Some(bits.finish())
}

/// An individual_channel_stream with no bands: global gain, ics_info with `max_sfb` 0, and no
/// pulse, TNS or gain-control data.
fn silent_channel_stream(bits: &mut Bits) {
    bits.put(0, 8); // global_gain
    bits.put(0, 1); // ics_reserved_bit
    bits.put(0, 2); // window_sequence: ONLY_LONG_SEQUENCE
    bits.put(0, 1); // window_shape
    bits.put(0, 6); // max_sfb: no bands, so no section, scale factor or spectral data
    bits.put(0, 1); // predictor_data_present
    bits.put(0, 1); // pulse_data_present
    bits.put(0, 1); // tns_data_present
    bits.put(0, 1); // gain_control_data_present
}

/// Bits written most significant first, padded with zeros to a whole byte.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    used: u32,
}

impl Bits {
    fn put(&mut self, value: u32, width: u32) {
        for i in (0..width).rev() {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.used % 8);
            }
            self.used += 1;
        }
    }

    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_packed_most_significant_first() {
        let mut bits = Bits::default();
        bits.put(0b101, 3);
        bits.put(0xFF, 8);
        assert_eq!(bits.finish(), vec![0b1011_1111, 0b1110_0000]);
    }
}
