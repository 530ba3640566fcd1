//! One granule's coded spectrum read back to magnitudes: the Huffman-coded integers of its 576
//! lines (ISO/IEC 11172-3 2.4.3.4.7: big_values pairs in up to three regions, then count1 quads)
//! requantised as `|q|^(4/3) · 2^(gain / 4)` (2.4.3.4.7.1), without the signs (which are read
//! past) and without anything after: a magnitude per MDCT line is what the onset envelope needs.

use std::sync::OnceLock;

use super::mp3_frames::{Bits, GRANULE, Granule, Window, long_bands, short_bands};
use super::mp3_huffman::{PAIR_ESCAPE, PAIR_SIGNS, PairTable, Tables};

/// Scale factors' extra boost of the upper long bands when `preflag` is set (Table B.6).
const PRETAB: [i32; 22] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 2, 0];

/// Largest coded magnitude: 15 plus 13 linbits.
const MAX_Q: usize = 15 + (1 << 13);
/// Gain exponents (in quarter steps of 6 dB... of `2^(1/4)`) kept in the table, lowest first.
const GAIN_MIN: i32 = -480;
const GAIN_MAX: i32 = 64;

/// A granule whose bits do not decode: a code not in its table, or more bits than it was given.
#[derive(Debug, PartialEq)]
pub struct BadGranule;

/// How a granule's bits ended, when all of it was decoded: whether the count1 region ended
/// exactly at `part2_3_length` (a last quad crossing the end, which the standard says to drop,
/// does not count as exact). None when decoding stopped at `max_line`.
pub type Exact = Option<bool>;

struct Powers {
    /// `q^(4/3)` for every coded magnitude.
    pow43: Vec<f32>,
    /// `2^(e/4)` for e from GAIN_MIN to GAIN_MAX.
    gain: Vec<f32>,
}

fn powers() -> &'static Powers {
    static POWERS: OnceLock<Powers> = OnceLock::new();
    POWERS.get_or_init(|| Powers {
        pow43: (0..=MAX_Q).map(|q| (q as f64).powf(4.0 / 3.0) as f32).collect(),
        gain: (GAIN_MIN..=GAIN_MAX).map(|e| (f64::from(e) / 4.0).exp2() as f32).collect(),
    })
}

#[inline]
fn value(p: &Powers, q: i16) -> f32 {
    let m = p.pow43[usize::from(q.unsigned_abs())];
    // q's sign bit onto the magnitude, without a branch (which lines are negative is the
    // music's: a branch on it mispredicted half the time).
    f32::from_bits(m.to_bits() | (u32::from(q as u16 & 0x8000) << 16))
}

fn gain(e: i32) -> f32 {
    powers().gain[(e.clamp(GAIN_MIN, GAIN_MAX) - GAIN_MIN) as usize]
}

/// Decodes the Huffman data of `g` from `bits` (just past its scale factors) up to bit `end`,
/// and writes each line's value into `out` (the lowest `out.len()` lines: those the caller
/// reads), in frequency order: a short block's three windows are interleaved (window `w`'s line
/// `j` at `3j + w`), so a band's sum covers all three.
/// Lines from `max_line` up are neither decoded nor requantised: the next granule's bits start
/// `part2_3_length` after this one's whatever they hold, so the rest is skipped unread (the
/// envelope needs the lines below 5 kHz, a quarter of them).
pub fn decode(
    bits: &mut Bits,
    end: usize,
    g: &Granule,
    sample_rate: u32,
    max_line: usize,
    out: &mut [f32],
) -> Result<Exact, BadGranule> {
    let mut q = [0i16; GRANULE];
    let tables = Tables::get();
    // Pairs are whole, so the limit is even.
    let limit = (max_line + 1).min(GRANULE) & !1;
    let big = (g.big_values * 2).min(GRANULE);
    let mut line = 0;
    // Long blocks' big-values lines are requantised as they are decoded, into `out` (their
    // lookups and products then run beside the codes' chain of lookups, which is what the
    // decoding waits on); short blocks' order differs, so theirs go through `q`.
    let fused = !g.short() && out.len() >= limit;
    let (p, long) = (powers(), long_bands(sample_rate));
    let mut band = 0;
    for (region, &table) in g.table_select.iter().enumerate() {
        let stop = match region {
            0 => g.region1_start,
            1 => g.region2_start,
            _ => GRANULE,
        }
        .min(big)
        .min(limit);
        if line >= stop {
            continue;
        }
        if table == 0 {
            if fused {
                out[line..stop].fill(0.0);
            }
            line = stop;
            continue;
        }
        let t = tables.pair(table).ok_or(BadGranule)?;
        let mut window = bits.window();
        if fused {
            // Each scale-factor band's lines straight to their values (band edges are even, so
            // a pair is never split).
            while line < stop {
                while long[band + 1] <= line {
                    band += 1;
                }
                let (segment, scale) = (long[band + 1].min(stop), long_scale(g, band));
                while line < segment {
                    let Some((x, y)) = pair(&mut window, &t) else {
                        bits.pos = window.pos();
                        return Err(BadGranule);
                    };
                    out[line] = value(p, x) * scale;
                    out[line + 1] = value(p, y) * scale;
                    line += 2;
                }
            }
        } else {
            while line < stop {
                let Some((x, y)) = pair(&mut window, &t) else {
                    bits.pos = window.pos();
                    return Err(BadGranule);
                };
                (q[line], q[line + 1]) = (x, y);
                line += 2;
            }
        }
        bits.pos = window.pos();
        if bits.pos > end {
            return Err(BadGranule);
        }
    }
    // The lines requantised already.
    let done = if fused { line } else { 0 };
    if line >= limit && limit < GRANULE {
        requantise(&q, done, line, g, sample_rate, out);
        return Ok(None);
    }
    line = line.max(big);
    let quads = &tables.quads[usize::from(g.count1_table)];
    let mut exact = bits.pos == end;
    while bits.pos < end && line + 4 <= GRANULE && line < limit {
        let v = quads.decode(bits).map_err(|_| BadGranule)?;
        // The (up to four) sign bits from one look at the next 32.
        let word = bits.peek32();
        let mut used = 0;
        for k in 0..4 {
            q[line + k] = if (v >> (3 - k)) & 1 == 0 {
                0
            } else {
                used += 1;
                if (word << (used - 1)) >> 31 == 1 { -1 } else { 1 }
            };
        }
        bits.skip(used);
        if bits.pos > end {
            // Past the end: the standard drops this last quad.
            q[line..line + 4].fill(0);
            break;
        }
        line += 4;
        exact = bits.pos == end;
    }
    requantise(&q, done, line.min(max_line), g, sample_rate, out);
    Ok((limit == GRANULE).then_some(exact))
}

/// The next big-values pair: the code, both values' linbits and signs, from one look at the next
/// 56 bits; the code's first 10 bits from before the refill (a pair without linbits takes at
/// most 21 of the 56 or more, and one with them is followed by a refill of its own). None for a
/// code not in the table.
#[inline(always)]
fn pair(window: &mut Window, t: &PairTable) -> Option<(i16, i16)> {
    let head = window.peek();
    window.refill();
    let word = window.peek();
    let (xy, len) = t.lookup.decode_split(head, word).ok()?;
    let (x, y, rest) = ((xy >> 4) & 15, xy & 15, word << len);
    if xy & PAIR_ESCAPE == 0 {
        // The common case: the bits taken (code and signs) are the table's, so the next code's
        // lookup waits only on this one's; the signs are read beside it.
        let x_signed = u32::from(x != 0);
        let x_negative = (rest >> 63) as u32 & x_signed;
        let y_negative = ((rest << x_signed) >> 63) as u32 & u32::from(y != 0);
        window.consume(len as u32 + (u32::from(xy >> PAIR_SIGNS) & 3));
        Some((
            if x_negative == 1 { -(x as i16) } else { x as i16 },
            if y_negative == 1 { -(y as i16) } else { y as i16 },
        ))
    } else {
        let (mut rest, mut used) = (rest, len);
        let pair = (signed(&mut rest, &mut used, x, t.linbits), signed(&mut rest, &mut used, y, t.linbits));
        window.consume(used as u32);
        window.refill();
        Some(pair)
    }
}

/// The scale of long band `band`'s lines.
#[inline]
fn long_scale(g: &Granule, band: usize) -> f32 {
    let shift = 2 * (1 + i32::from(g.scalefac_scale));
    let pre = if g.preflag { PRETAB[band] } else { 0 };
    gain(g.global_gain - 210 - shift * (i32::from(g.scalefac_l[band]) + pre))
}

/// A coded value `v` (0-15) with its `linbits` extension (when 15) and its sign bit (when not
/// 0), both read off the top of `rest`, which is moved past them (`used` counts the bits).
#[inline(always)]
fn signed(rest: &mut u64, used: &mut usize, v: u16, linbits: usize) -> i16 {
    let mut v = v as i16;
    if v == 15 && linbits > 0 {
        v += (*rest >> (64 - linbits)) as i16;
        *rest <<= linbits;
        *used += linbits;
    }
    // The sign bit, only when the value is not 0 (without a branch: which lines are 0 is the
    // music's, so a branch on it mispredicts).
    let nonzero = u32::from(v != 0);
    let negative = (*rest >> 63) as u32 & nonzero;
    *rest <<= nonzero;
    *used += nonzero as usize;
    if negative == 1 { -v } else { v }
}

/// Values of lines `from..upto` from their coded values, gains and scale factors (those below
/// `from` are there already: a long block's, see [`decode`]); the rest of `out` zero (only `out`,
/// not a whole granule: zeroing 576 lines per granule was 6 % of the coded path's
/// instructions).
fn requantise(q: &[i16; GRANULE], from: usize, upto: usize, g: &Granule, sample_rate: u32, out: &mut [f32]) {
    let p = powers();
    let shift = 2 * (1 + i32::from(g.scalefac_scale));
    let base = g.global_gain - 210;
    let long = long_bands(sample_rate);
    // Mixed blocks are long below line 36 (8 long bands), short above (from short band 3).
    let long_end = if !g.short() {
        GRANULE
    } else if g.mixed {
        long[8]
    } else {
        0
    };
    // The lines written run from 0 to here without a gap.
    let mut written = from.min(upto);
    for band in 0..22 {
        let (start, to) = (long[band].max(from), long[band + 1].min(long_end).min(upto).min(out.len()));
        if long[band] >= to {
            break;
        }
        if start >= to {
            continue;
        }
        let pre = if g.preflag { PRETAB[band] } else { 0 };
        let scale = gain(base - shift * (i32::from(g.scalefac_l[band]) + pre));
        for i in start..to {
            out[i] = value(p, q[i]) * scale;
        }
        written = to;
    }
    if long_end != GRANULE {
        let short = short_bands(sample_rate);
        let first = if g.mixed { 3 } else { 0 };
        for band in first..13 {
            let (from, width) = (short[band], short[band + 1] - short[band]);
            if 3 * from >= upto || 3 * from >= out.len() {
                break;
            }
            for w in 0..3 {
                let scale = gain(base - 8 * g.subblock_gain[w] - shift * i32::from(g.scalefac_s[band][w]));
                for k in 0..width {
                    let coded = 3 * from + w * width + k;
                    if let Some(o) = out.get_mut(3 * (from + k) + w) {
                        *o = value(p, q[coded]) * scale;
                    }
                }
            }
            written = (3 * short[band + 1]).min(out.len());
        }
    }
    out[written..].fill(0.0);
}
