//! How the `mvgen` binary is linked (build.rs `link_args`, link/README.md), read from the very
//! binary the other tests run: its relative relocations packed as RELR, and the functions of
//! `link/startup.order` placed together at the front of `.text`, which is what keeps a start from
//! paging in most of the binary (BENCHMARKS.md, "Issue 22: the code a start touches").
//!
//! The test build is not the shipping one, so most of the list's Rust names (they carry hashes of
//! the LTO build) are not in it; the C functions (SQLite's) and the C runtime's keep their names
//! in every build, which is enough to see whether the linker followed the list.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::collections::{HashMap, HashSet};

const SHT_SYMTAB: u32 = 2;
const SHT_DYNAMIC: u32 = 6;
const DT_NULL: u64 = 0;
const DT_RELASZ: u64 = 8;
const DT_RELR: u64 = 36;
/// More of the list than this must be in the test build, or the check below proves nothing.
const MIN_PLACED: usize = 100;

#[test]
fn relative_relocations_are_packed() {
    let elf = Elf::read();
    let dynamic = elf.section_of_type(SHT_DYNAMIC).expect("a PIE has a .dynamic section");
    let tags: HashMap<u64, u64> = dynamic
        .chunks(16)
        .map(|entry| (le64(&entry[..8]), le64(&entry[8..])))
        .take_while(|&(tag, _)| tag != DT_NULL)
        .collect();
    assert!(tags.contains_key(&DT_RELR), "no DT_RELR: the relocations are not packed (-z pack-relative-relocs)");
    // What is left as RELA is what RELR cannot say (symbol and TLS relocations): a few KB, where
    // the relative ones as RELA were hundreds.
    let rela = tags.get(&DT_RELASZ).copied().unwrap_or(0);
    assert!(rela < 64 * 1024, "{rela} bytes of RELA relocations left");
}

#[test]
fn startup_functions_come_first_in_text() {
    let elf = Elf::read();
    let (text_start, text_end) = elf.section_named(".text").expect("a .text section");
    let order = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/link/startup.order"))
        .expect("read link/startup.order");
    let wanted: HashSet<&str> = order.lines().collect();
    // Every function of the list the binary defines, with its address and size.
    let placed: Vec<(u64, u64)> = elf
        .functions()
        .into_iter()
        .filter(|(name, _, _)| wanted.contains(name.as_str()))
        .filter(|&(_, addr, _)| (text_start..text_end).contains(&addr))
        .map(|(_, addr, size)| (addr, size))
        .collect();
    assert!(placed.len() >= MIN_PLACED, "only {} functions of the list are in the binary", placed.len());
    let bytes: u64 = placed.iter().map(|&(_, size)| size).sum();
    let end = placed.iter().map(|&(addr, size)| addr + size).max().unwrap_or(text_start);
    // Packed at the front: the last of them ends within their own total (plus alignment padding
    // and what the list's sections hold besides the named function) from the start of .text.
    let span = end - text_start;
    assert!(
        span <= bytes + bytes / 4 + 64 * 1024,
        "the {} listed functions ({bytes} bytes) are spread over the first {span} bytes of .text ({} in all)",
        placed.len(),
        text_end - text_start
    );
}

/// The few parts of an ELF64 little-endian file these tests read.
struct Elf {
    bytes: Vec<u8>,
    /// (name, type, address, offset, size, link) of every section.
    sections: Vec<(String, u32, u64, usize, usize, usize)>,
}

impl Elf {
    fn read() -> Elf {
        let bytes = std::fs::read(env!("CARGO_BIN_EXE_mvgen")).expect("read the mvgen binary");
        assert_eq!(&bytes[..6], b"\x7fELF\x02\x01", "not a 64-bit little-endian ELF file");
        let shoff = le64(&bytes[0x28..]) as usize;
        let (shentsize, shnum, shstrndx) =
            (le16(&bytes[0x3a..]) as usize, le16(&bytes[0x3c..]) as usize, le16(&bytes[0x3e..]) as usize);
        let header = |i: usize| &bytes[shoff + i * shentsize..shoff + (i + 1) * shentsize];
        let names_at = le64(&header(shstrndx)[0x18..]) as usize;
        let sections = (0..shnum)
            .map(|i| {
                let h = header(i);
                let name = c_str(&bytes[names_at + le32(h) as usize..]);
                let (kind, addr, offset, size, link) = (
                    le32(&h[4..]),
                    le64(&h[0x10..]),
                    le64(&h[0x18..]) as usize,
                    le64(&h[0x20..]) as usize,
                    le32(&h[0x28..]) as usize,
                );
                (name, kind, addr, offset, size, link)
            })
            .collect();
        Elf { bytes, sections }
    }

    fn section_of_type(&self, kind: u32) -> Option<&[u8]> {
        let &(_, _, _, offset, size, _) = self.sections.iter().find(|s| s.1 == kind)?;
        Some(&self.bytes[offset..offset + size])
    }

    /// The section's address range.
    fn section_named(&self, name: &str) -> Option<(u64, u64)> {
        let &(_, _, addr, _, size, _) = self.sections.iter().find(|s| s.0 == name)?;
        Some((addr, addr + size as u64))
    }

    /// (name, address, size) of every function symbol in `.symtab`.
    fn functions(&self) -> Vec<(String, u64, u64)> {
        const STT_FUNC: u8 = 2;
        let Some(&(_, _, _, offset, size, link)) = self.sections.iter().find(|s| s.1 == SHT_SYMTAB) else {
            panic!("the test build has no symbol table (is it stripped?)");
        };
        let strings = self.sections[link].3;
        self.bytes[offset..offset + size]
            .chunks(24)
            .filter(|sym| sym[4] & 0xf == STT_FUNC && le64(&sym[16..]) > 0)
            .map(|sym| (c_str(&self.bytes[strings + le32(sym) as usize..]), le64(&sym[8..]), le64(&sym[16..])))
            .collect()
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}
