//! An MPEG-1 layer-3 stream walked frame by frame, only as far as the onset envelope needs: frame
//! headers, each granule's side information and scale factors, and its Huffman-coded main data
//! gathered from the bit reservoir. Nothing is synthesised (no IMDCT, no filterbank): that half of
//! a decoder is most of its cost, and the envelope is read off the coded spectrum instead
//! (`mp3_spectrum`, `mp3_envelope`).
//!
//! Read in 64 KiB pieces, with at most a reservoir's worth of main data kept, so memory does not
//! grow with the song. Damaged input is skipped or refused, never a panic: a header that does not
//! parse is searched past for the next sync word, and a granule whose bits do not add up is
//! counted bad by the caller. What this walker does not read (free-format bitrates, MPEG-2 and
//! 2.5's half-rate frames, layers 1 and 2) is told apart with [`Mp3Error::Unsupported`], so the
//! caller can hand the song to symphonia instead.

use std::io::Read;

/// Samples per channel in one granule; an MPEG-1 frame has two.
pub const GRANULE: usize = 576;

/// Layer-3 bitrates of MPEG-1 in kb/s by the header's index (0 is free format, 15 invalid).
const BITRATES: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const SAMPLE_RATES: [u32; 3] = [44_100, 48_000, 32_000];
/// Main data may start this far back in earlier frames (a 9-bit `main_data_begin`).
const MAX_RESERVOIR: usize = 511;
const READ_CHUNK: usize = 64 * 1024;

/// Why a song is not walked.
#[derive(Debug)]
pub enum Mp3Error {
    /// Valid MPEG audio this walker does not read; symphonia decodes it instead.
    Unsupported(&'static str),
    /// The source failed.
    Io(std::io::Error),
    /// Most of the frames could not be read, saying how many.
    Damaged(String),
}

/// A frame header (ISO/IEC 11172-3 2.4.1.3), MPEG-1 layer 3 only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub sample_rate: u32,
    pub channels: usize,
    /// Mid/side stereo: the channels are (L+R)/√2 and (L−R)/√2.
    pub mid_side: bool,
    /// Intensity stereo: above some band the right channel is the left one scaled.
    pub intensity: bool,
    crc: bool,
    /// The whole frame in bytes, header included.
    len: usize,
}

/// What the first four bytes of a frame say.
enum Parsed {
    Frame(Header),
    Unsupported(&'static str),
    /// Not a header at all (no sync word, reserved values): damaged data or a tag.
    Invalid,
}

fn parse_header(b: [u8; 4]) -> Parsed {
    let h = u32::from_be_bytes(b);
    if h >> 21 != 0x7FF {
        return Parsed::Invalid;
    }
    let version = (h >> 19) & 3;
    let layer = (h >> 17) & 3;
    let bitrate = (h >> 12) & 15;
    let rate = (h >> 10) & 3;
    if version == 1 || layer == 0 || bitrate == 15 || rate == 3 {
        return Parsed::Invalid;
    }
    if layer != 1 {
        return Parsed::Unsupported("MPEG layer 1 or 2");
    }
    if version != 3 {
        return Parsed::Unsupported("MPEG-2 or 2.5 (half-rate) frames");
    }
    if bitrate == 0 {
        return Parsed::Unsupported("a free-format bitrate");
    }
    let sample_rate = SAMPLE_RATES[rate as usize];
    let padding = (h >> 9) & 1;
    let mode = (h >> 6) & 3;
    Parsed::Frame(Header {
        sample_rate,
        channels: if mode == 3 { 1 } else { 2 },
        mid_side: mode == 1 && (h >> 5) & 1 == 1,
        intensity: mode == 1 && (h >> 4) & 1 == 1,
        crc: (h >> 16) & 1 == 0,
        len: (144_000 * BITRATES[bitrate as usize] / sample_rate + padding) as usize,
    })
}

/// One granule of one channel's side information (2.4.1.7) and scale factors (2.4.2.7).
#[derive(Debug, Clone, Default)]
pub struct Granule {
    /// Bits of scale factors and Huffman data in the main data.
    pub part2_3_length: usize,
    pub big_values: usize,
    pub global_gain: i32,
    scalefac_compress: usize,
    /// 0 normal, 1 start, 2 short (three windows), 3 stop.
    pub block_type: u8,
    /// Short blocks above the two lowest long bands only.
    pub mixed: bool,
    pub table_select: [usize; 3],
    pub subblock_gain: [i32; 3],
    /// Where big_values' regions 1 and 2 start, in lines.
    pub region1_start: usize,
    pub region2_start: usize,
    pub preflag: bool,
    /// Scale factors step by 2^1 (1) or 2^½ (0).
    pub scalefac_scale: bool,
    /// Quad table B (1) or A (0) for the count1 region.
    pub count1_table: bool,
    /// Long-block scale factors by band (21 used).
    pub scalefac_l: [u8; 22],
    /// Short-block scale factors by band and window (12 used).
    pub scalefac_s: [[u8; 3]; 13],
}

impl Granule {
    pub fn short(&self) -> bool {
        self.block_type == 2
    }
}

/// A frame's side information: two granules of up to two channels.
#[derive(Debug, Clone, Default)]
pub struct SideInfo {
    main_data_begin: usize,
    scfsi: [[bool; 4]; 2],
    pub granules: [[Granule; 2]; 2],
}

/// An MSB-first bit reader over a byte slice; reads past the end give zeros (the caller checks
/// its position against the bits it was given, so garbage never reads out of bounds).
pub struct Bits<'a> {
    data: &'a [u8],
    pub pos: usize,
}

impl<'a> Bits<'a> {
    pub fn new(data: &'a [u8]) -> Bits<'a> {
        Bits { data, pos: 0 }
    }

    /// The next 32 bits, not consumed.
    #[inline]
    pub fn peek32(&self) -> u32 {
        (self.peek56() >> 32) as u32
    }

    /// The next 56 bits (or more), not consumed, at the top of the word: enough for a Huffman
    /// pair's code (at most 19 bits) and both its values' extension and sign bits (2 · 14).
    #[inline]
    pub fn peek56(&self) -> u64 {
        self.word_at(self.pos / 8) << (self.pos % 8)
    }

    #[inline]
    pub fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    /// The next `n` bits (0 to 32) as a number.
    #[inline]
    pub fn read(&mut self, n: usize) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek32() >> (32 - n);
        self.pos += n;
        v
    }

    fn flag(&mut self) -> bool {
        self.read(1) == 1
    }

    /// The eight bytes from `byte` on as a big-endian word (zeros past the end).
    #[inline]
    fn word_at(&self, byte: usize) -> u64 {
        match self.data.get(byte..byte + 8) {
            Some(eight) => u64::from_be_bytes(eight.try_into().unwrap_or([0; 8])),
            None => {
                let mut eight = [0u8; 8];
                for (i, b) in eight.iter_mut().enumerate() {
                    *b = self.data.get(byte + i).copied().unwrap_or(0);
                }
                u64::from_be_bytes(eight)
            }
        }
    }

    /// A [`Window`] on these bits from the current position; [`Window::pos`] gives the position
    /// to carry on from.
    #[inline]
    pub fn window(&self) -> Window<'_, 'a> {
        let mut w = Window { bits: self, buf: 0, count: 0, next: self.pos / 8 };
        w.refill();
        w.consume((self.pos % 8) as u32);
        w
    }
}

/// The next bits of a [`Bits`] held in a register word, for a run of Huffman codes: `refill`
/// tops it up to at least 56 bits without a branch (the "variant 4" of F. Giesen's "Reading bits
/// in far too many ways"), so each code's lookup depends on the last one's length through a
/// shift, not through a load from the stream at a computed position.
pub struct Window<'b, 'a> {
    bits: &'b Bits<'a>,
    /// The next `count` bits at the top, zeros (or the bits after them) below.
    buf: u64,
    count: u32,
    /// The first byte not yet in `buf`'s `count` bits.
    next: usize,
}

impl Window<'_, '_> {
    /// Tops the word up to 56 to 63 bits.
    #[inline]
    pub fn refill(&mut self) {
        self.buf |= self.bits.word_at(self.next) >> self.count;
        self.next += (63 - self.count as usize) >> 3;
        self.count |= 56;
    }

    /// The bits (at least 56 after a refill) at the top of a word.
    #[inline]
    pub fn peek(&self) -> u64 {
        self.buf
    }

    /// Moves on by `n` bits (no more than were there).
    #[inline]
    pub fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.count -= n;
    }

    /// The position in the bits reached.
    #[inline]
    pub fn pos(&self) -> usize {
        self.next * 8 - self.count as usize
    }
}

/// Reads the side information of an MPEG-1 frame (17 bytes mono, 32 stereo).
fn parse_side_info(bytes: &[u8], channels: usize, sample_rate: u32) -> SideInfo {
    let mut b = Bits::new(bytes);
    let mut si = SideInfo { main_data_begin: b.read(9) as usize, ..SideInfo::default() };
    b.skip(if channels == 1 { 5 } else { 3 });
    for ch in si.scfsi.iter_mut().take(channels) {
        for band in ch.iter_mut() {
            *band = b.flag();
        }
    }
    let long = long_bands(sample_rate);
    for gr in 0..2 {
        for ch in 0..channels {
            let g = &mut si.granules[gr][ch];
            g.part2_3_length = b.read(12) as usize;
            g.big_values = (b.read(9) as usize).min(288);
            g.global_gain = b.read(8) as i32;
            g.scalefac_compress = b.read(4) as usize;
            if b.flag() {
                g.block_type = b.read(2) as u8;
                g.mixed = b.flag();
                for t in g.table_select.iter_mut().take(2) {
                    *t = b.read(5) as usize;
                }
                for s in g.subblock_gain.iter_mut() {
                    *s = b.read(3) as i32;
                }
                // Window switching fixes the regions: region 1 starts at line 36 and takes the rest.
                g.region1_start = 36;
                g.region2_start = GRANULE;
            } else {
                for t in g.table_select.iter_mut() {
                    *t = b.read(5) as usize;
                }
                let region0 = b.read(4) as usize;
                let region1 = b.read(3) as usize;
                g.region1_start = long[(region0 + 1).min(22)];
                g.region2_start = long[(region0 + region1 + 2).min(22)];
            }
            g.preflag = b.flag();
            g.scalefac_scale = b.flag();
            g.count1_table = b.flag();
        }
    }
    si
}

/// Scale-factor band edges in lines, long blocks (Table B.8).
pub fn long_bands(sample_rate: u32) -> &'static [usize; 23] {
    match sample_rate {
        48_000 => &[0, 4, 8, 12, 16, 20, 24, 30, 36, 42, 50, 60, 72, 88, 106, 128, 156, 190, 230, 276, 330, 384, 576],
        32_000 => &[0, 4, 8, 12, 16, 20, 24, 30, 36, 44, 54, 66, 82, 102, 126, 156, 194, 240, 296, 364, 448, 550, 576],
        _ => &[0, 4, 8, 12, 16, 20, 24, 30, 36, 44, 52, 62, 74, 90, 110, 134, 162, 196, 238, 288, 342, 418, 576],
    }
}

/// Scale-factor band edges in lines of one window, short blocks (Table B.8).
pub fn short_bands(sample_rate: u32) -> &'static [usize; 14] {
    match sample_rate {
        48_000 => &[0, 4, 8, 12, 16, 22, 28, 38, 50, 64, 80, 100, 126, 192],
        32_000 => &[0, 4, 8, 12, 16, 22, 30, 42, 58, 78, 104, 138, 180, 192],
        _ => &[0, 4, 8, 12, 16, 22, 30, 40, 52, 66, 84, 106, 136, 192],
    }
}

/// Bits per scale factor by `scalefac_compress`: (bands 0-10, bands 11-20) for long blocks.
const SLEN: [(usize, usize); 16] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (3, 0),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 1),
    (2, 2),
    (2, 3),
    (3, 1),
    (3, 2),
    (3, 3),
    (4, 2),
    (4, 3),
];

/// Reads a granule's scale factors (part 2) at the start of its main data. Granule 1 copies the
/// long-block groups its `scfsi` flags share from granule 0 (`previous`).
pub fn read_scalefactors(b: &mut Bits, g: &mut Granule, scfsi: &[bool; 4], gr: usize, previous: &Granule) {
    let (slen1, slen2) = SLEN[g.scalefac_compress];
    if g.short() {
        let mut sfb = 0;
        if g.mixed {
            for sf in g.scalefac_l.iter_mut().take(8) {
                *sf = b.read(slen1) as u8;
            }
            sfb = 3;
        }
        for (band, row) in g.scalefac_s.iter_mut().enumerate().take(12).skip(sfb) {
            let bits = if band < 6 { slen1 } else { slen2 };
            for sf in row.iter_mut() {
                *sf = b.read(bits) as u8;
            }
        }
        return;
    }
    const GROUPS: [(usize, usize); 4] = [(0, 6), (6, 11), (11, 16), (16, 21)];
    for (i, &(from, to)) in GROUPS.iter().enumerate() {
        let bits = if i < 2 { slen1 } else { slen2 };
        for band in from..to {
            g.scalefac_l[band] = if gr == 1 && scfsi[i] { previous.scalefac_l[band] } else { b.read(bits) as u8 };
        }
    }
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Walked {
    pub sample_rate: u32,
    /// Samples at the start a player drops (the LAME tag's encoder delay plus the decoder's 529),
    /// as symphonia does.
    pub priming: u64,
    /// Frames whose main data was there, and frames skipped (lost sync, data missing).
    pub good: u64,
    pub bad: u64,
}

impl Walked {
    /// A few damaged frames are skipped (players do the same); a song mostly damaged is refused,
    /// as `decode` refuses one. `bad_granules`: granules the caller could not read in frames the
    /// walk counted good (two make a frame).
    pub fn refuse_if_damaged(&self, bad_granules: u64) -> Result<(), Mp3Error> {
        let bad = self.bad + bad_granules.div_ceil(2);
        if self.good == 0 || bad > self.good {
            return Err(Mp3Error::Damaged(format!(
                "{bad} of its {} audio frames could not be decoded",
                self.good + self.bad
            )));
        }
        Ok(())
    }
}

/// One frame handed to the caller: its header, side information, and its main data (the
/// reservoir's bytes from `main_data_begin` on, then this frame's own).
pub struct Frame<'a> {
    pub header: Header,
    pub side: &'a mut SideInfo,
    pub main_data: &'a [u8],
    /// The priming a player drops from the start (as [`Walked::priming`], known from the first
    /// frame on).
    pub priming: u64,
}

impl Frame<'_> {
    pub fn scfsi(&self, ch: usize) -> [bool; 4] {
        self.side.scfsi[ch]
    }
}

/// Walks the layer-3 frames of `source`, calling `each` with every frame whose main data is
/// whole, until the end or until `each` returns false. Fails with `Unsupported` when the first
/// frame is of a kind this walker does not read.
pub fn walk(source: &mut dyn Read, each: &mut dyn FnMut(Frame) -> bool) -> Result<Walked, Mp3Error> {
    let mut input = Input { source, buf: Vec::with_capacity(READ_CHUNK * 2), at: 0, eof: false };
    skip_id3v2(&mut input)?;
    let mut walked = Walked::default();
    let mut reservoir: Vec<u8> = Vec::with_capacity(MAX_RESERVOIR + 2048);
    let mut first: Option<Header> = None;
    loop {
        input.fill(4)?;
        let Some(four) = input.peek(4) else { break };
        let header = match parse_header([four[0], four[1], four[2], four[3]]) {
            Parsed::Frame(h) => h,
            Parsed::Unsupported(what) if first.is_none() => return Err(Mp3Error::Unsupported(what)),
            // Later, a stray header of another kind is damage (or a false sync): search on.
            Parsed::Unsupported(_) | Parsed::Invalid => {
                input.at += 1;
                if first.is_some() {
                    walked.bad += 1;
                    // Whatever follows a lost frame cannot borrow from before it.
                    reservoir.clear();
                    resync(&mut input, first)?;
                }
                continue;
            }
        };
        if first.is_some_and(|f| f.sample_rate != header.sample_rate || f.channels != header.channels) {
            // A false sync inside damaged data: a stream does not change its rate midway.
            input.at += 1;
            continue;
        }
        input.fill(header.len)?;
        let Some(frame) = input.peek(header.len) else { break };
        let side_at = 4 + if header.crc { 2 } else { 0 };
        let side_len = if header.channels == 1 { 17 } else { 32 };
        let main_at = side_at + side_len;
        if frame.len() < main_at {
            input.at += 1;
            continue;
        }
        if first.is_none() {
            first = Some(header);
            walked.sample_rate = header.sample_rate;
            walked.priming = 529;
            // The Xing/Info frame a VBR encoder writes first carries no audio (its side
            // information is zeros): its LAME extension says how many samples of priming
            // to drop.
            let tag = &frame[main_at..];
            if tag.starts_with(b"Xing") || tag.starts_with(b"Info") {
                walked.priming += lame_delay(tag).unwrap_or(0);
                input.at += header.len;
                continue;
            }
        }
        let mut side = parse_side_info(&frame[side_at..main_at], header.channels, header.sample_rate);
        let begin = side.main_data_begin;
        let own = &frame[main_at..];
        let whole = begin <= reservoir.len();
        let start = reservoir.len().saturating_sub(begin);
        reservoir.extend_from_slice(own);
        input.at += header.len;
        if whole {
            walked.good += 1;
            let keep_going =
                each(Frame { header, side: &mut side, main_data: &reservoir[start..], priming: walked.priming });
            if !keep_going {
                break;
            }
        } else {
            // The first frames after a cut or a loss point back into data that is gone.
            walked.bad += 1;
        }
        if reservoir.len() > MAX_RESERVOIR {
            reservoir.drain(..reservoir.len() - MAX_RESERVOIR);
        }
        input.compact();
    }
    if first.is_none() {
        return Err(Mp3Error::Unsupported("no MPEG audio frame was found"));
    }
    Ok(walked)
}

/// Moves `input` on to the next byte that starts a header like `first`'s (after damage).
fn resync(input: &mut Input, first: Option<Header>) -> Result<(), Mp3Error> {
    loop {
        input.fill(4)?;
        let Some(four) = input.peek(4) else { return Ok(()) };
        if let Parsed::Frame(h) = parse_header([four[0], four[1], four[2], four[3]])
            && first.is_none_or(|f| f.sample_rate == h.sample_rate && f.channels == h.channels)
        {
            return Ok(());
        }
        input.at += 1;
        input.compact();
    }
}

/// The encoder delay from a LAME extension after a Xing/Info header, if there is one.
fn lame_delay(tag: &[u8]) -> Option<u64> {
    let flags = u32::from_be_bytes(tag.get(4..8)?.try_into().ok()?);
    // Frames, bytes, a 100-byte table of contents and a quality figure, each when flagged.
    let mut at = 8;
    for (bit, len) in [(1, 4), (2, 4), (4, 100), (8, 4)] {
        if flags & bit != 0 {
            at += len;
        }
    }
    let lame = tag.get(at..at + 24)?;
    if !lame.starts_with(b"LAME") && !lame.starts_with(b"Lavc") && !lame.starts_with(b"Lavf") {
        return None;
    }
    // Encoder string (9), revision, lowpass, peak (4), two gains (2 each), flags, bitrate: then
    // 12 bits of delay and 12 of padding.
    let d = &lame[21..24];
    Some((u64::from(d[0]) << 4) | (u64::from(d[1]) >> 4))
}

/// Skips an ID3v2 tag at the start (its size is in the 10-byte header, 7 bits a byte).
fn skip_id3v2(input: &mut Input) -> Result<(), Mp3Error> {
    input.fill(10)?;
    let Some(h) = input.peek(10) else { return Ok(()) };
    if &h[..3] != b"ID3" {
        return Ok(());
    }
    let size = h[6..10].iter().fold(0usize, |n, &b| (n << 7) | usize::from(b & 0x7F));
    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
    let mut left = 10 + size + footer;
    while left > 0 {
        input.fill(1)?;
        let have = input.buf.len() - input.at;
        if have == 0 {
            break;
        }
        let step = have.min(left);
        input.at += step;
        left -= step;
        input.compact();
    }
    Ok(())
}

/// The source read in pieces, with the unread part in `buf[at..]`.
struct Input<'a> {
    source: &'a mut dyn Read,
    buf: Vec<u8>,
    at: usize,
    eof: bool,
}

impl Input<'_> {
    /// Reads until `n` bytes are buffered past `at`, or the source ends.
    fn fill(&mut self, n: usize) -> Result<(), Mp3Error> {
        while self.buf.len() - self.at < n && !self.eof {
            self.compact();
            let old = self.buf.len();
            self.buf.resize(old + READ_CHUNK, 0);
            let got = loop {
                match self.source.read(&mut self.buf[old..]) {
                    Ok(got) => break got,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(Mp3Error::Io(e));
                    }
                }
            };
            self.buf.truncate(old + got);
            self.eof = got == 0;
        }
        Ok(())
    }

    fn peek(&self, n: usize) -> Option<&[u8]> {
        self.buf.get(self.at..self.at + n)
    }

    /// Drops what was read, once it is most of the buffer (so bytes move rarely).
    fn compact(&mut self) {
        if self.at >= READ_CHUNK {
            self.buf.drain(..self.at);
            self.at = 0;
        }
    }
}
