//! An MP3 decoded only as far as the analysis needs: to mono samples at the analysis rate (the
//! song's over `d`, ~11 kHz), from the lowest `K = 32/d` of its 32 subbands, for the same
//! `onset::OnsetEnvelope` a fully decoded song feeds. The analysis looks below 5 kHz; subband `K-1`
//! ends at the analysis rate's Nyquist frequency, so the rest of the decoder's work (the Huffman
//! data of the upper three quarters of the lines, their IMDCTs, 24 of 32 subbands of the
//! polyphase synthesis and three output samples in four) is never done.
//!
//! The steps of a layer-3 decoder (ISO/IEC 11172-3 2.4.3.4), each on the lowest K subbands only:
//! the walk and the requantised lines are `mp3_frames` and `mp3_spectrum`'s; then stereo to mono,
//! in the spectral domain where that is exact (mid/side: the mono mix is M/√2; left/right: (L+R)/2;
//! in both only when the two channels have the same block type, as the IMDCT is then the same
//! linear map), otherwise each channel through its own IMDCT, weighted by ½, into the same
//! (mono) overlap; alias reduction; the IMDCT (long, start, stop, short and mixed blocks) with its
//! windows and overlap-add; frequency inversion; and the polyphase synthesis with only K subbands
//! non-zero, computing only every `d`-th output sample (and only the matrixing rows those use).
//! Intensity stereo is not decoded: such a song is `Unsupported`, for the caller to decode with
//! symphonia, as are the kinds of MP3 the walker does not read.

use std::io::Read;
use std::sync::OnceLock;

use realfft::num_complex::Complex;

use super::decode::Decoded;
use super::mp3_frames::{self, Bits, GRANULE, Granule, Mp3Error, short_bands};
use super::mp3_spectrum;
use super::mp3_tables::SYNTHESIS_D;

/// Subbands of the polyphase filterbank, lines in each.
const SUBBANDS: usize = 32;
pub const LINES: usize = 18;

/// The IMDCTs' cosines and windows.
struct Tables {
    /// The 36-point IMDCT as an 18-point DCT-IV by way of a 9-point complex DFT
    /// ([`dct4_18`]): the twiddles before it (`e^(-iπn/18)`), inside it (`e^(-2πi·n·m/9)` for
    /// n, m in 1..3) and after it (`e^(-iπ(m+¼)/18)`).
    pre: [Complex<f32>; 9],
    inner: [[Complex<f32>; 2]; 2],
    post: [Complex<f32>; 9],
    /// `[block type][i]`: the long windows for block type 0 (normal), 1 (start) and 3 (stop); 2
    /// is unused (short blocks have their own).
    window: [[f32; 36]; 4],
    /// `[k][i]`: the 12-point IMDCT of a short window, windowed.
    short: [[f32; 12]; 6],
    /// Alias-reduction butterflies (2.4.3.4.10.1, Table B.9): cs and ca.
    cs: [f32; 8],
    ca: [f32; 8],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        use std::f64::consts::PI;
        let sin36 = |i: usize| (PI / 36.0 * (i as f64 + 0.5)).sin();
        let sin12 = |i: usize| (PI / 12.0 * (i as f64 + 0.5)).sin();
        let window = |block_type: usize, i: usize| match (block_type, i) {
            (1, 0..18) => sin36(i),
            (1, 18..24) => 1.0,
            (1, 24..30) => sin12(i - 18),
            (1, _) => 0.0,
            (3, 0..6) => 0.0,
            (3, 6..12) => sin12(i - 6),
            (3, 12..18) => 1.0,
            _ => sin36(i),
        };
        let turn = |angle: f64| Complex::new(angle.cos() as f32, (-angle).sin() as f32);
        let pre = std::array::from_fn(|n| turn(PI * n as f64 / 18.0));
        let inner = std::array::from_fn(|n| std::array::from_fn(|m| turn(2.0 * PI * ((n + 1) * (m + 1)) as f64 / 9.0)));
        let post = std::array::from_fn(|m| turn(PI * (m as f64 + 0.25) / 18.0));
        let windows: [[f32; 36]; 4] = std::array::from_fn(|bt| std::array::from_fn(|i| window(bt, i) as f32));
        let mut short = [[0.0; 12]; 6];
        for (k, row) in short.iter_mut().enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                let c = (PI / 24.0 * ((2 * i + 1 + 6) * (2 * k + 1)) as f64).cos();
                *v = (c * sin12(i)) as f32;
            }
        }
        const C: [f64; 8] = [-0.6, -0.535, -0.33, -0.185, -0.095, -0.041, -0.0142, -0.0037];
        let (mut cs, mut ca) = ([0.0; 8], [0.0; 8]);
        for i in 0..8 {
            let root = (1.0 + C[i] * C[i]).sqrt();
            cs[i] = (1.0 / root) as f32;
            ca[i] = (C[i] / root) as f32;
        }
        Tables { pre, inner, post, window: windows, short, cs, ca }
    })
}

/// Subbands whose long IMDCTs are computed together, one in each lane of a [`Lanes`].
const LANES: usize = 8;

/// One value for each of [`LANES`] subbands: the IMDCT's arithmetic on these is the same
/// operations on each lane, which the compiler keeps in vector registers (the 18-point DCT-IV of
/// one subband at a time was mostly shuffles between its real and imaginary parts).
#[derive(Clone, Copy, Default)]
struct Lanes([f32; LANES]);

impl std::ops::Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(self, o: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
}

impl std::ops::Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(self, o: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
}

impl std::ops::Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(self, c: f32) -> Lanes {
        Lanes(std::array::from_fn(|l| self.0[l] * c))
    }
}

impl std::ops::Neg for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn neg(self) -> Lanes {
        Lanes(std::array::from_fn(|l| -self.0[l]))
    }
}

/// What [`dct4_18`] computes on: `f32` (one subband) or [`Lanes`] (several at once).
trait Real:
    Copy + Default + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<f32, Output = Self>
{
}
impl Real for f32 {}
impl Real for Lanes {}

/// A complex value of [`Real`]s, with num_complex's own order of operations (so one subband's
/// result does not depend on whether it was computed alone or in lanes).
#[derive(Clone, Copy, Default)]
struct Cx<T> {
    re: T,
    im: T,
}

impl<T: Real> Cx<T> {
    #[inline(always)]
    fn add(self, o: Cx<T>) -> Cx<T> {
        Cx { re: self.re + o.re, im: self.im + o.im }
    }
    #[inline(always)]
    fn sub(self, o: Cx<T>) -> Cx<T> {
        Cx { re: self.re - o.re, im: self.im - o.im }
    }
    #[inline(always)]
    fn scale(self, c: f32) -> Cx<T> {
        Cx { re: self.re * c, im: self.im * c }
    }
    /// Times the constant `c`.
    #[inline(always)]
    fn turn(self, c: Complex<f32>) -> Cx<T> {
        Cx { re: self.re * c.re - self.im * c.im, im: self.re * c.im + self.im * c.re }
    }
}

/// The 18-point DCT-IV of `x` (`C[j] = Σ x[k]·cos(π/18·(j+½)(k+½))`), which is the 36-point
/// IMDCT's outputs 9-26 reversed and negated: the even and odd-from-the-top inputs paired into 9
/// complex values, turned, put through a 9-point DFT (two stages of 3-point DFTs), and turned
/// again; about 200 operations where the product with its 18 × 18 matrix took 324 products and
/// as many sums. Equal to that product to float rounding (the test below).
#[inline(always)]
fn dct4_18<T: Real>(t: &Tables, x: &[T; LINES]) -> [T; LINES] {
    // w[n] = (x[2n] + i·x[17-2n]) · e^(-iπn/18), in the order the first stage reads them.
    let w: [Cx<T>; 9] = std::array::from_fn(|n| Cx { re: x[2 * n], im: x[17 - 2 * n] }.turn(t.pre[n]));
    // First stage: for each n2, the 3-point DFT of w[n2], w[n2+3], w[n2+6], turned by
    // e^(-2πi·n2·m1/9); kept as a[m1][n2].
    let mut a = [[Cx::<T>::default(); 3]; 3];
    for n2 in 0..3 {
        let d = dft3(w[n2], w[n2 + 3], w[n2 + 6]);
        for (m1, (row, &v)) in a.iter_mut().zip(&d).enumerate() {
            row[n2] = if n2 == 0 || m1 == 0 { v } else { v.turn(t.inner[n2 - 1][m1 - 1]) };
        }
    }
    // Second stage: W[m1 + 3·m2] is the 3-point DFT over n2; then turned and split into the
    // outputs: C[2m] = Re(U[m]), C[17-2m] = -Im(U[m]).
    let mut c = [T::default(); LINES];
    for (m1, row) in a.iter().enumerate() {
        for (m2, v) in dft3(row[0], row[1], row[2]).into_iter().enumerate() {
            let m = m1 + 3 * m2;
            let u = v.turn(t.post[m]);
            c[2 * m] = u.re;
            c[17 - 2 * m] = T::default() - u.im;
        }
    }
    c
}

/// The 3-point DFT (`X[m] = Σ x[n]·e^(-2πi·nm/3)`).
#[inline(always)]
fn dft3<T: Real>(a: Cx<T>, b: Cx<T>, c: Cx<T>) -> [Cx<T>; 3] {
    const HALF_ROOT3: f32 = 0.866_025_4;
    let (sum, diff) = (b.add(c), b.sub(c));
    let r = a.sub(sum.scale(0.5));
    // -i·(√3/2)·(b - c)
    let q = Cx { re: diff.im * HALF_ROOT3, im: (T::default() - diff.re) * HALF_ROOT3 };
    [a.add(sum), r.add(q), r.sub(q)]
}

/// The decoder's state from one granule to the next: the mono overlap of the IMDCT and the
/// polyphase synthesis' FIFO, both only for what the kept subbands and samples need.
pub struct LowBand {
    rate: u32,
    /// Output one sample in `d`.
    d: usize,
    /// Subbands kept.
    k: usize,
    /// Positions (0..32) within a 32-sample block that can be output.
    positions: Vec<usize>,
    /// The matrixing rows those positions read, `[subband][position]` (so a subband's sample is
    /// added to every position at once, in independent lanes): rows `j` (used while the FIFO
    /// slot's age is even) and `32 + j` (odd).
    rows_even: Vec<f32>,
    rows_odd: Vec<f32>,
    /// The FIFO of 16 matrixed vectors, only the rows kept, `[slot][position]`.
    fifo_even: Vec<f32>,
    fifo_odd: Vec<f32>,
    front: usize,
    /// The synthesis window for each position, `[age / 2][position]`.
    window_even: Vec<f32>,
    window_odd: Vec<f32>,
    /// One block's output at each position, before the ones not kept are dropped.
    block: Vec<f32>,
    /// Subband samples of the granule being made (`[subband][time]`), and the IMDCT's overlap.
    sub: [[f32; LINES]; SUBBANDS],
    overlap: [[f32; LINES]; SUBBANDS],
    next_overlap: [[f32; LINES]; SUBBANDS],
    /// Full-rate index of the next synthesised sample (priming included).
    at: u64,
    /// Samples at the start a player drops; the output is samples `priming + n·d`.
    priming: u64,
    /// Lines alias reduction may touch, and a scratch copy of them.
    work: [f32; GRANULE],
}

impl LowBand {
    /// A decoder for a song at `rate` with `priming` samples to drop, keeping `k` subbands and
    /// every `d`-th sample.
    pub fn new(rate: u32, priming: u64, d: usize, k: usize) -> LowBand {
        let d = d.max(1);
        let k = k.clamp(1, SUBBANDS);
        // When d divides 32 the same positions come out of every block; otherwise any may.
        let positions: Vec<usize> = if SUBBANDS.is_multiple_of(d) {
            (0..SUBBANDS).filter(|j| (j + d - (priming % d as u64) as usize).is_multiple_of(d)).collect()
        } else {
            (0..SUBBANDS).collect()
        };
        let rows = |offset: usize| -> Vec<f32> {
            let cos = |i: usize, sb: usize| (std::f64::consts::PI / 64.0 * ((16 + i) * (2 * sb + 1)) as f64).cos();
            (0..k).flat_map(|sb| positions.iter().map(move |&j| cos(offset + j, sb) as f32)).collect()
        };
        let rows_even = rows(0);
        let rows_odd = rows(32);
        let window = |offset: usize| -> Vec<f32> {
            (0..8).flat_map(|i| positions.iter().map(move |&j| SYNTHESIS_D[64 * i + offset + j])).collect()
        };
        LowBand {
            rate,
            d,
            k,
            rows_even,
            rows_odd,
            fifo_even: vec![0.0; 16 * positions.len()],
            fifo_odd: vec![0.0; 16 * positions.len()],
            front: 0,
            window_even: window(0),
            window_odd: window(32),
            block: vec![0.0; positions.len()],
            positions,
            sub: [[0.0; LINES]; SUBBANDS],
            overlap: [[0.0; LINES]; SUBBANDS],
            next_overlap: [[0.0; LINES]; SUBBANDS],
            at: 0,
            priming,
            work: [0.0; GRANULE],
        }
    }

    /// The output rate.
    pub fn rate(&self) -> f64 {
        f64::from(self.rate) / self.d as f64
    }

    /// The lines of a granule `g` to requantise: the kept subbands, the first 8 lines of the next
    /// one (alias reduction mixes them into the last kept one's), and for short blocks up to the
    /// end of the scale-factor band the kept lines end in (its three windows are coded one after
    /// another).
    pub fn max_line(&self, g: &Granule) -> usize {
        let long = (LINES * self.k + 8).min(GRANULE);
        if !g.short() {
            return long;
        }
        let per_window = 6 * self.k;
        let edge = short_bands(self.rate).iter().copied().find(|&e| e >= per_window).unwrap_or(192);
        // Mixed blocks' two long subbands (36 lines) are below that whenever k > 1.
        (3 * edge).max(if g.mixed { 36 } else { 0 }).min(GRANULE)
    }

    /// How many of a granule's lowest lines [`LowBand::add`] reads: the kept subbands' and the 8
    /// above them that alias reduction mixes down.
    pub fn lines_read(&self) -> usize {
        (LINES * self.k + 8).min(GRANULE)
    }

    /// Starts a granule: its subband samples begin as the last granule's overlap.
    pub fn begin(&mut self) {
        for sb in 0..self.k {
            self.sub[sb] = self.overlap[sb];
            self.next_overlap[sb] = [0.0; LINES];
        }
    }

    /// Adds one channel's requantised `lines` (of granule `g`, in `mp3_spectrum`'s order),
    /// weighted, to the granule: alias reduction, IMDCT, windowing and overlap.
    pub fn add(&mut self, lines: &[f32; GRANULE], g: &Granule, weight: f32) {
        let t = tables();
        let k = self.k;
        let used = self.lines_read();
        let x = &mut self.work;
        x[..used].copy_from_slice(&lines[..used]);
        // Alias reduction between long-block subbands (only the two long ones of mixed blocks,
        // none in short blocks), including the boundary above the last kept subband.
        let boundaries = if !g.short() {
            k.min(SUBBANDS - 1)
        } else if g.mixed {
            1
        } else {
            0
        };
        for b in 1..=boundaries {
            for i in 0..8 {
                let (lo, hi) = (x[LINES * b - 1 - i], x[LINES * b + i]);
                x[LINES * b - 1 - i] = lo * t.cs[i] - hi * t.ca[i];
                x[LINES * b + i] = hi * t.cs[i] + lo * t.ca[i];
            }
        }
        let long_subbands = if !g.short() {
            k
        } else if g.mixed {
            2.min(k)
        } else {
            0
        };
        // Mixed blocks' long subbands use the normal window. Their IMDCTs [`LANES`] at a time:
        // outputs 9 + m are the DCT-IV's 17 - m negated, and 0-8 and 27-35 their mirrors.
        let window = &t.window[if g.short() { 0 } else { usize::from(g.block_type) }];
        for first in (0..long_subbands).step_by(LANES) {
            let n = (long_subbands - first).min(LANES);
            let lines: [Lanes; LINES] = std::array::from_fn(|i| {
                Lanes(std::array::from_fn(|l| if l < n { x[LINES * (first + l) + i] } else { 0.0 }))
            });
            let c = dct4_18(t, &lines);
            for l in 0..n {
                let (sub, next) = (&mut self.sub[first + l], &mut self.next_overlap[first + l]);
                for i in 0..9 {
                    sub[i] += weight * (c[9 + i].0[l] * window[i]);
                    sub[9 + i] += weight * (-c[17 - i].0[l] * window[9 + i]);
                    next[i] += weight * (-c[8 - i].0[l] * window[18 + i]);
                    next[9 + i] += weight * (-c[i].0[l] * window[27 + i]);
                }
            }
        }
        for sb in long_subbands..k {
            let lines = &x[LINES * sb..LINES * (sb + 1)];
            let mut z = [0.0f32; 36];
            {
                // Three short windows, lines interleaved (window w's line j at 3j + w), each
                // overlapped at 6, 12 and 18.
                for w in 0..3 {
                    let out = &mut z[6 + 6 * w..18 + 6 * w];
                    for (j, row) in t.short.iter().enumerate() {
                        let v = lines[3 * j + w];
                        if v != 0.0 {
                            for (z, c) in out.iter_mut().zip(row) {
                                *z += v * c;
                            }
                        }
                    }
                }
            }
            for i in 0..LINES {
                self.sub[sb][i] += weight * z[i];
                self.next_overlap[sb][i] += weight * z[LINES + i];
            }
        }
    }

    /// Ends a granule without the synthesis: the samples (at rate/32) of the kept subbands,
    /// before frequency inversion, so each subband `sb`'s spectrum runs upright from
    /// `sb · rate/64` Hz (the inversion turns the odd ones' over), for `mp3_envelope`'s low end.
    pub fn finish_subbands(&mut self) -> &[[f32; LINES]] {
        self.swap_overlap();
        &self.sub[..self.k]
    }

    /// The overlap just made becomes the next granule's (only the kept subbands': the others'
    /// stay zero, and swapping all 32 was 2 % of the coded path's instructions).
    fn swap_overlap(&mut self) {
        self.overlap[..self.k].swap_with_slice(&mut self.next_overlap[..self.k]);
    }

    /// Ends a granule: frequency inversion, then the polyphase synthesis of its 18 time slots,
    /// pushing the kept output samples onto `out`.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let k = self.k;
        self.swap_overlap();
        for sb in (1..k).step_by(2) {
            for t in (1..LINES).step_by(2) {
                self.sub[sb][t] = -self.sub[sb][t];
            }
        }
        let n = self.positions.len();
        let d = self.d as u64;
        for t in 0..LINES {
            // Matrixing: every position's two rows at once (independent sums, which vectorise;
            // one position's dot product over the subbands was a chain of dependent adds).
            let slot = self.front * n;
            let even = &mut self.fifo_even[slot..slot + n];
            let odd = &mut self.fifo_odd[slot..slot + n];
            even.fill(0.0);
            odd.fill(0.0);
            for sb in 0..k {
                let x = self.sub[sb][t];
                let (re, ro) = (&self.rows_even[sb * n..(sb + 1) * n], &self.rows_odd[sb * n..(sb + 1) * n]);
                for (((e, o), a), b) in even.iter_mut().zip(odd.iter_mut()).zip(re).zip(ro) {
                    *e += a * x;
                    *o += b * x;
                }
            }
            // Windowing: the same, over the 16 slots of the FIFO by age.
            self.block.fill(0.0);
            for i in 0..8 {
                let e = ((self.front + 2 * i) & 15) * n;
                let o = ((self.front + 2 * i + 1) & 15) * n;
                let (fe, fo) = (&self.fifo_even[e..e + n], &self.fifo_odd[o..o + n]);
                let (we, wo) = (&self.window_even[i * n..(i + 1) * n], &self.window_odd[i * n..(i + 1) * n]);
                for ((((y, a), b), c), w) in self.block.iter_mut().zip(fe).zip(we).zip(fo).zip(wo) {
                    *y += a * b + c * w;
                }
            }
            for (&j, &y) in self.positions.iter().zip(&self.block) {
                let at = self.at + j as u64;
                if at >= self.priming && (at - self.priming).is_multiple_of(d) {
                    out.push(y);
                }
            }
            self.front = (self.front + 15) & 15;
            self.at += SUBBANDS as u64;
        }
    }
}

/// The decimation factor of `decode::TARGET_RATE` for a song at `rate`, and the subbands that
/// keep its band (to the analysis rate's Nyquist frequency).
pub fn factor(rate: u32) -> (usize, usize) {
    let d = ((f64::from(rate) / super::decode::TARGET_RATE).round() as usize).max(1);
    (d, SUBBANDS.div_ceil(d))
}

/// Decodes the MP3 in `source` to mono samples at its rate over [`factor`], up to
/// `max_seconds` (after the priming), calling `sink` with each granule's samples and their
/// rate. `Unsupported` when the walker does not read this kind of MP3 or it uses intensity
/// stereo (possibly after samples were handed on: the caller starts again with symphonia).
pub fn decode(source: &mut dyn Read, max_seconds: f64, sink: &mut dyn FnMut(f64, &[f32])) -> Result<Decoded, Mp3Error> {
    decode_bands(source, max_seconds, None, sink)
}

/// [`decode`], keeping `bands` (a factor and a number of subbands) in place of [`factor`]'s: the
/// tests decode every subband at the full rate, to compare with symphonia's whole decoder.
pub fn decode_bands(
    source: &mut dyn Read,
    max_seconds: f64,
    bands: Option<(usize, usize)>,
    sink: &mut dyn FnMut(f64, &[f32]),
) -> Result<Decoded, Mp3Error> {
    let mut state: Option<LowBand> = None;
    let mut lines = [[0.0f32; GRANULE]; 2];
    let mut out: Vec<f32> = Vec::with_capacity(GRANULE);
    let mut bad_granules = 0u64;
    let mut intensity = false;
    // Full-rate samples after the priming, and the cap on them.
    let (mut taken, mut max_frames, mut reached, mut capped) = (0u64, u64::MAX, false, false);
    let blank = Granule::default();
    let walked = mp3_frames::walk(source, &mut |frame| {
        let header = frame.header;
        if header.intensity {
            intensity = true;
            return false;
        }
        let lb = state.get_or_insert_with(|| {
            let (d, k) = bands.unwrap_or_else(|| factor(header.sample_rate));
            max_frames = (max_seconds * f64::from(header.sample_rate)) as u64;
            LowBand::new(header.sample_rate, frame.priming, d, k)
        });
        let total_bits = frame.main_data.len() * 8;
        let mut bits = Bits::new(frame.main_data);
        let scfsi = [frame.scfsi(0), frame.scfsi(1)];
        let side = frame.side;
        let channels = header.channels;
        for gr in 0..2 {
            if reached {
                capped = true;
                return false;
            }
            let [g0, g1] = &side.granules[gr];
            // One IMDCT of the mono mix when both channels' blocks are alike; mid/side then
            // needs only the mid channel.
            let alike = channels == 1 || (g0.block_type == g1.block_type && g0.mixed == g1.mixed);
            let wanted = |ch: usize| ch == 0 || !(header.mid_side && alike);
            let mut ok = true;
            for ch in 0..channels {
                let start = bits.pos;
                let end = start + side.granules[gr][ch].part2_3_length;
                lines[ch].fill(0.0);
                if end > total_bits {
                    ok = false;
                } else {
                    let (first, second) = side.granules.split_at_mut(1);
                    let (g, previous) =
                        if gr == 0 { (&mut first[0][ch], &blank) } else { (&mut second[0][ch], &first[0][ch]) };
                    // Scale factors are read for every channel: granule 1 may share them.
                    mp3_frames::read_scalefactors(&mut bits, g, &scfsi[ch], gr, previous);
                    if wanted(ch) {
                        let max_line = lb.max_line(g);
                        if mp3_spectrum::decode(&mut bits, end, g, header.sample_rate, max_line, &mut lines[ch])
                            .is_err()
                        {
                            ok = false;
                            lines[ch].fill(0.0);
                        }
                    }
                }
                bits.pos = end;
            }
            if !ok {
                // A damaged granule is silence (its overlap still rings out); time goes on.
                bad_granules += 1;
                lines.iter_mut().for_each(|l| l.fill(0.0));
            }
            let [g0, g1] = &side.granules[gr];
            lb.begin();
            if channels == 1 {
                lb.add(&lines[0], g0, 1.0);
            } else if alike {
                let [l0, l1] = &mut lines;
                if header.mid_side {
                    lb.add(l0, g0, std::f32::consts::FRAC_1_SQRT_2);
                } else {
                    for (a, b) in l0.iter_mut().zip(l1.iter()) {
                        *a += b;
                    }
                    lb.add(l0, g0, 0.5);
                }
            } else {
                let [l0, l1] = &mut lines;
                if header.mid_side {
                    // Left (M+S)/√2 and right (M−S)/√2, each through its own blocks, halved.
                    for (m, s) in l0.iter_mut().zip(l1.iter_mut()) {
                        let (mid, side) = (*m, *s);
                        *m = (mid + side) * std::f32::consts::FRAC_1_SQRT_2;
                        *s = (mid - side) * std::f32::consts::FRAC_1_SQRT_2;
                    }
                }
                lb.add(l0, g0, 0.5);
                lb.add(l1, g1, 0.5);
            }
            out.clear();
            lb.finish(&mut out);
            // Each output sample stands for `d` full-rate ones; stop at the cap.
            let d = lb.d as u64;
            let room = usize::try_from(max_frames.saturating_sub(taken).div_ceil(d)).unwrap_or(usize::MAX);
            let take = out.len().min(room);
            sink(lb.rate(), &out[..take]);
            taken += take as u64 * d;
            if taken >= max_frames {
                reached = true;
                if take < out.len() {
                    capped = true;
                    return false;
                }
            }
        }
        true
    })?;
    if intensity {
        return Err(Mp3Error::Unsupported("intensity stereo"));
    }
    let Some(lb) = state else { return Err(Mp3Error::Unsupported("no MPEG audio frame was found")) };
    walked.refuse_if_damaged(bad_granules)?;
    let seconds = (taken.min(max_frames) as f64 / f64::from(lb.rate)).min(max_seconds);
    Ok(Decoded { seconds, capped })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long blocks through [`LowBand::add`] (alias reduction, the IMDCT in lanes, windows and
    /// overlap) against the textbook (ISO/IEC 11172-3 2.4.3.4.10: the butterflies, then
    /// `x[i] = Σ X[k]·cos(π/72·(2i + 1 + 18)(2k + 1))`) in f64, for every long window, several
    /// numbers of subbands (a partial set of lanes among them) and lines of every scale.
    #[test]
    fn long_blocks_are_the_textbook_imdct() {
        let t = tables();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        const C: [f64; 8] = [-0.6, -0.535, -0.33, -0.185, -0.095, -0.041, -0.0142, -0.0037];
        for round in 0..48 {
            let scale = [1.0, 1e-3, 30.0][round % 3];
            let block_type = [0u8, 1, 3][(round / 3) % 3];
            let k = [8, 7, 11, 32][(round / 9) % 4];
            let weight = [1.0, 0.5, std::f32::consts::FRAC_1_SQRT_2][round % 3];
            let mut lines = [0.0f32; GRANULE];
            let used = (LINES * k + 8).min(GRANULE);
            lines[..used].iter_mut().for_each(|v| *v = (next() * scale) as f32);
            let mut g = Granule::default();
            g.block_type = block_type;
            let mut lb = LowBand::new(44_100, 0, 1, k);
            lb.begin();
            lb.add(&lines, &g, weight);
            let mut x: Vec<f64> = lines.iter().map(|&v| f64::from(v)).collect();
            for b in 1..=k.min(SUBBANDS - 1) {
                for i in 0..8 {
                    let root = (1.0 + C[i] * C[i]).sqrt();
                    let (cs, ca) = (1.0 / root, C[i] / root);
                    let (lo, hi) = (x[LINES * b - 1 - i], x[LINES * b + i]);
                    x[LINES * b - 1 - i] = lo * cs - hi * ca;
                    x[LINES * b + i] = hi * cs + lo * ca;
                }
            }
            for sb in 0..k {
                for i in 0..36 {
                    let want: f64 = (0..LINES)
                        .map(|j| {
                            let angle = std::f64::consts::PI / 72.0 * ((2 * i + 1 + 18) * (2 * j + 1)) as f64;
                            x[LINES * sb + j] * angle.cos()
                        })
                        .sum::<f64>()
                        * f64::from(t.window[usize::from(block_type)][i])
                        * f64::from(weight);
                    let got = if i < LINES { lb.sub[sb][i] } else { lb.next_overlap[sb][i - LINES] };
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-5 * scale,
                        "round {round}, subband {sb} of {k}, output {i}: {got} against {want}"
                    );
                }
            }
        }
    }
}
