//! Layer 3's Huffman codes (the tables of `mp3_tables`) turned into lookup tables: the next
//! [`FIRST`] bits index an entry that is either a value and its code's length, or a sub-table for
//! the next [`STEP`] bits of a longer code (and so on). Built once per process.

use std::sync::OnceLock;

use super::mp3_frames::Bits;
use super::mp3_tables as t;

/// Bits looked up first: all but a few percent of the codes are shorter (at 8 bits, a fifth of
/// the big-values pairs of the benchmark's `long.mp3` took a second lookup, whose branch and
/// wait were a third of the Huffman decoding's time), and a table is 4 KiB.
const FIRST: usize = 10;
/// Bits looked up in each sub-table after the first.
const STEP: usize = 8;
/// An entry pointing to a sub-table at the offset in its low bits.
const SUB: u32 = 1 << 31;

/// A code that is not in its table: damaged data.
#[derive(Debug, PartialEq)]
pub struct BadCode;

/// One code table ready to decode.
pub struct Lookup {
    entries: Vec<u32>,
}

impl Lookup {
    /// `codes[i]` is value `i`'s codeword and length. Fails when two codes overlap (one is a
    /// prefix of another), which no table of the standard does.
    pub fn build(codes: &[(u32, u8)]) -> Result<Lookup, String> {
        Lookup::build_with(codes, |v| v as u16)
    }

    /// [`Lookup::build`], each value `i` stored as `value(i)`.
    fn build_with(codes: &[(u32, u8)], value: impl Fn(usize) -> u16) -> Result<Lookup, String> {
        let mut entries = vec![0u32; 1 << FIRST];
        let all: Vec<(u32, u8, u16)> = codes.iter().enumerate().map(|(v, &(c, l))| (c, l, value(v))).collect();
        fill(&mut entries, 0, 0, FIRST as u8, &all)?;
        Ok(Lookup { entries })
    }

    /// Decodes one value from the top bits of `word` (as [`Bits::peek56`] gives them): the value
    /// and its code's length, nothing consumed. The first [`FIRST`] bits are looked up in `head`,
    /// the same bits as `word` but maybe fewer of them (a `Window` before its refill): the first
    /// lookup, which most codes end at, then does not wait for the refill's load.
    #[inline]
    pub fn decode_split(&self, head: u64, word: u64) -> Result<(u16, usize), BadCode> {
        let entry = self.entries[(head >> (64 - FIRST)) as usize];
        if entry & SUB == 0 {
            let len = (entry >> 16) as usize;
            return if len == 0 { Err(BadCode) } else { Ok((entry as u16, len)) };
        }
        let (mut base, mut depth) = ((entry & !SUB) as usize, FIRST);
        loop {
            let index = ((word << depth) >> (64 - STEP)) as usize;
            let entry = self.entries[base + index];
            if entry & SUB != 0 {
                depth += STEP;
                base = (entry & !SUB) as usize;
                continue;
            }
            let len = (entry >> 16) as usize;
            if len == 0 {
                return Err(BadCode);
            }
            return Ok((entry as u16, depth + len));
        }
    }

    /// Decodes one value at `bits`' position.
    #[inline]
    pub fn decode(&self, bits: &mut Bits) -> Result<u16, BadCode> {
        let word = bits.peek56();
        let (value, len) = self.decode_split(word, word)?;
        bits.skip(len);
        Ok(value)
    }
}

/// Fills the table of `step` bits at `entries[base..base + 2^step]` with `codes`, whose first
/// `depth` bits are already consumed by the tables above it; its sub-tables are of [`STEP`] bits.
fn fill(entries: &mut Vec<u32>, base: usize, depth: u8, step: u8, codes: &[(u32, u8, u16)]) -> Result<(), String> {
    let mut longer: Vec<Vec<(u32, u8, u16)>> = vec![Vec::new(); 1 << step];
    for &(code, len, value) in codes {
        if len == 0 || len > 24 {
            return Err(format!("value {value} has a code of {len} bits"));
        }
        let rest = len - depth;
        if rest <= step {
            let own = (code & ((1 << rest) - 1)) as usize;
            let first = own << (step - rest);
            for slot in &mut entries[base + first..base + first + (1 << (step - rest))] {
                if *slot != 0 {
                    return Err(format!("value {value}'s code overlaps another"));
                }
                *slot = (u32::from(rest) << 16) | u32::from(value);
            }
        } else {
            let index = ((code >> (rest - step)) & ((1 << step) - 1)) as usize;
            longer[index].push((code, len, value));
        }
    }
    for (index, group) in longer.iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        if entries[base + index] != 0 {
            return Err("a code is the prefix of a longer one".to_string());
        }
        let sub = entries.len();
        entries.resize(sub + (1 << STEP), 0);
        entries[base + index] = SUB | sub as u32;
        fill(entries, sub, depth + step, STEP as u8, group)?;
    }
    Ok(())
}

/// A pair's value in a big-values lookup: `x << 4 | y` (the standard's `x · size + y` split when
/// the table is built, so no division per pair), how many of the two are not 0 (each has a sign
/// bit after the code) in the bits [`PAIR_SIGNS`], and [`PAIR_ESCAPE`] when one is a 15 that
/// `linbits` extend (tables 16-31), whose bits then follow the code too.
pub const PAIR_SIGNS: u32 = 8;
pub const PAIR_ESCAPE: u16 = 1 << 10;

/// A big-values table: its lookup (values as [`PAIR_SIGNS`] says) and the extra bits
/// (`linbits`) that extend a 15.
pub struct PairTable {
    pub lookup: &'static Lookup,
    pub linbits: usize,
}

/// The 32 big-values tables by `table_select` (0, 4 and 14 are unused: 0 means all zeros) and the
/// two count1 tables.
pub struct Tables {
    lookups: Vec<Lookup>,
    /// Each table number's lookup in `lookups`.
    pairs: [Option<usize>; 32],
    pub quads: [Lookup; 2],
}

/// Tables 16-23 share table 16's codes and 24-31 table 24's, with more `linbits` each.
const LINBITS: [usize; 32] =
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 6, 8, 10, 13, 4, 5, 6, 7, 8, 9, 11, 13];

/// Each used table's codes, by table number.
pub fn pair_codes(table: usize) -> Option<(&'static [(u32, u8)], u16)> {
    Some(match table {
        1 => (&t::PAIRS_1, 2),
        2 => (&t::PAIRS_2, 3),
        3 => (&t::PAIRS_3, 3),
        5 => (&t::PAIRS_5, 4),
        6 => (&t::PAIRS_6, 4),
        7 => (&t::PAIRS_7, 6),
        8 => (&t::PAIRS_8, 6),
        9 => (&t::PAIRS_9, 6),
        10 => (&t::PAIRS_10, 8),
        11 => (&t::PAIRS_11, 8),
        12 => (&t::PAIRS_12, 8),
        13 => (&t::PAIRS_13, 16),
        15 => (&t::PAIRS_15, 16),
        16..=23 => (&t::PAIRS_16, 16),
        24..=31 => (&t::PAIRS_24, 16),
        _ => return None,
    })
}

impl Tables {
    /// The process' tables, built on first use.
    pub fn get() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            // The codes are the standard's, checked by this module's tests, so building them
            // cannot fail; an empty lookup (every code "bad") would only make every granule bad.
            let build = |codes: &[(u32, u8)]| Lookup::build(codes).unwrap_or(Lookup { entries: vec![0; 1 << FIRST] });
            // Tables 17-23 are table 16's lookup and 25-31 table 24's (the same codes, and every
            // one with linbits, so the same escapes): built once each.
            let mut lookups = Vec::new();
            let mut pairs = [None; 32];
            for (n, pair) in pairs.iter_mut().enumerate() {
                let Some((codes, size)) = pair_codes(n) else { continue };
                *pair = Some(match n {
                    17..=23 | 25..=31 => lookups.len() - 1,
                    _ => {
                        let size = usize::from(size);
                        let value = |v: usize| {
                            let (x, y) = (v / size, v % size);
                            let signs = usize::from(x != 0) + usize::from(y != 0);
                            let escape = if LINBITS[n] > 0 && (x == 15 || y == 15) { PAIR_ESCAPE } else { 0 };
                            (x << 4 | y | signs << PAIR_SIGNS) as u16 | escape
                        };
                        lookups
                            .push(Lookup::build_with(codes, value).unwrap_or(Lookup { entries: vec![0; 1 << FIRST] }));
                        lookups.len() - 1
                    }
                });
            }
            Tables { lookups, pairs, quads: [build(&t::QUADS_A), build(&t::QUADS_B)] }
        })
    }

    /// Table `n` (0-31), or None for the unused 4 and 14 (and 0, all zeros).
    pub fn pair(&'static self, n: usize) -> Option<PairTable> {
        let lookup = self.lookups.get((*self.pairs.get(n)?)?)?;
        Some(PairTable { lookup, linbits: LINBITS[n] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table is a complete prefix code: no code is a prefix of another (the build checks),
    /// and the lengths fill the code space exactly (Kraft's sum is 1), so any bits decode.
    #[test]
    fn every_table_is_a_complete_prefix_code() {
        let mut tables: Vec<(String, &[(u32, u8)])> = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 24]
            .iter()
            .map(|&n| (format!("table {n}"), pair_codes(n).unwrap().0))
            .collect();
        tables.push(("quads A".into(), &t::QUADS_A));
        tables.push(("quads B".into(), &t::QUADS_B));
        for (name, codes) in tables {
            Lookup::build(codes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let kraft: f64 = codes.iter().map(|&(_, len)| 0.5f64.powi(i32::from(len))).sum();
            assert!((kraft - 1.0).abs() < 1e-12, "{name}: Kraft sum {kraft}");
            for &(code, len) in codes {
                assert!(code < 1 << len, "{name}: code {code:#x} longer than {len} bits");
            }
        }
    }

    #[test]
    fn codes_decode_to_their_values() {
        let (codes, _) = pair_codes(15).unwrap();
        let lookup = Lookup::build(codes).unwrap();
        for (value, &(code, len)) in codes.iter().enumerate() {
            // The code at the top of a word, then ones: only the code's own bits may be taken.
            let word = (u64::from(code) << (64 - len)) | ((1u64 << (64 - len)) - 1);
            let bytes = word.to_be_bytes();
            let mut bits = Bits::new(&bytes);
            assert_eq!(lookup.decode(&mut bits), Ok(value as u16));
            assert_eq!(bits.pos, usize::from(len));
        }
    }
}
