//! Opus, which symphonia demuxes (Ogg, WebM) but has no decoder for: each packet is decoded by
//! `opus-pure` (pure Rust, libopus' algorithm, output within a 16-bit step of libopus'; measured
//! in BENCHMARKS.md), asked for the analysis' rate and mono at once, so neither a mix-down nor a
//! decimation follows and a 4-minute song decodes in about half a second of CPU.

use opus_pure::OpusDecoder;

/// The rate the packets are decoded at: the Opus rate nearest the analysis' ~11 kHz (a 48 kHz
/// MP3 is analysed at this same rate, a quarter of its own).
pub const RATE: u32 = 12_000;

/// The longest Opus packet, 120 ms, in samples at [`RATE`].
const MAX_PACKET_SAMPLES: usize = RATE as usize * 120 / 1000;

pub struct OpusPackets {
    decoder: OpusDecoder,
    pcm: Vec<f32>,
}

impl OpusPackets {
    /// A decoder for a stream whose `OpusHead` (symphonia's extra data for the track) is `head`;
    /// `None` for a stream of more than two channels (channel mapping family other than 0), whose
    /// packets hold several coupled streams the plain decoder does not read.
    pub fn new(head: Option<&[u8]>) -> Option<OpusPackets> {
        // OpusHead (RFC 7845 §5.1): byte 18 is the mapping family. A missing head (WebM may
        // leave CodecPrivate out) means the default: mono or stereo, family 0.
        let family = head.filter(|h| h.starts_with(b"OpusHead")).and_then(|h| h.get(18).copied()).unwrap_or(0);
        if family != 0 {
            return None;
        }
        // 12 kHz mono is one of the rates and channel counts the decoder takes; it cannot fail.
        let decoder = OpusDecoder::new(RATE as i32, 1).ok()?;
        Some(OpusPackets { decoder, pcm: vec![0.0; MAX_PACKET_SAMPLES] })
    }

    /// The mono samples of one packet at [`RATE`] (a stereo stream mixed down by the decoder), or
    /// why the packet could not be decoded.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], String> {
        // An empty packet would ask for loss concealment: nothing was lost, there is nothing.
        if packet.is_empty() {
            return Ok(&[]);
        }
        let samples = self.decoder.decode(packet, MAX_PACKET_SAMPLES, &mut self.pcm).map_err(|e| e.to_string())?;
        Ok(&self.pcm[..samples.min(self.pcm.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload's packets are whatever its bytes are: damaged ones must come back as an error
    /// or as finite samples (the decode loop counts the errors), never a panic, which the
    /// release profile's `panic = "abort"` would turn into the server's end.
    #[test]
    fn damaged_packets_are_errors_or_finite_samples_never_a_panic() {
        let mut opus = OpusPackets::new(None).expect("the default stream is mono or stereo");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let (mut errors, mut decoded) = (0, 0);
        for len in 0..600 {
            let packet: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            match opus.decode(&packet) {
                Ok(samples) => {
                    assert!(samples.len() <= MAX_PACKET_SAMPLES, "{len}: {} samples", samples.len());
                    assert!(samples.iter().all(|s| s.is_finite()), "{len}: a sample that is not a number");
                    decoded += 1;
                }
                Err(why) => {
                    assert!(!why.is_empty());
                    errors += 1;
                }
            }
        }
        // Random bytes are mostly not valid Opus, and some parse as packets of noise.
        assert!(errors > 0 && decoded > 0, "{errors} errors, {decoded} decoded");
    }

    #[test]
    fn only_mono_and_stereo_streams_are_taken() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        assert_eq!(head.len(), 19);
        assert!(OpusPackets::new(Some(&head)).is_some(), "mapping family 0: stereo");
        head[9] = 6;
        head[18] = 1;
        head.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        assert!(OpusPackets::new(Some(&head)).is_none(), "mapping family 1: 5.1 in coupled streams");
        assert!(OpusPackets::new(None).is_some(), "no head (WebM without CodecPrivate): the default");
    }
}
