#!/usr/bin/env python3
"""The linker's symbol ordering file from an LLD map and callgrind dumps (used by link/order.sh).

order.py MAP DUMP... : every instruction address each dump shows executed inside the mvgen binary
is mapped, through MAP (`-Wl,-Map`, written by the very build that ran), to the input section the
linker placed there, named by the function it holds. Sections are printed once: the first dump's
in address order, then each later dump's new ones.
"""
import bisect
import re
import sys

SECTION = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s{9}(\S.*)$")
SYMBOL = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+\s{17}(\S+)$")
OUTPUT = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (\S+)$")


def section_symbol(input_section):
    """The symbol a function section is named for (`obj:(.text.NAME)`, NAME still mangled, where
    the map prints demangled symbols), or None for a section holding several (plain `.text`)."""
    name = input_section.rsplit(":(", 1)[-1].rstrip(")")
    for prefix in (".text.unlikely.", ".text.hot.", ".text.startup.", ".text.exit.", ".text."):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def read_map(path):
    """(starts, sections): the .text input sections as (start, end, first symbol), sorted."""
    sections, current, out = [], None, None
    text = None
    with open(path) as f:
        for line in f:
            m = OUTPUT.match(line)
            if m:
                out = m.group(3)
                if out == ".text":
                    text = (int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16))
                continue
            if out != ".text":
                continue
            m = SECTION.match(line)
            if m:
                start, size = int(m.group(1), 16), int(m.group(2), 16)
                current = [start, start + size, section_symbol(m.group(3))] if size else None
                if current:
                    sections.append(current)
                continue
            m = SYMBOL.match(line)
            if m and current is not None and current[2] is None:
                current[2] = m.group(2)
    sections = [s for s in sections if s[2]]
    sections.sort()
    return text, [s[0] for s in sections], sections


def executed(path, binary_hint="mvgen"):
    """Every absolute instruction address in the dump's cost lines inside an object named mvgen."""
    addrs, inside = set(), False
    with open(path) as f:
        for line in f:
            if line.startswith("ob="):
                inside = line.rstrip().endswith("/" + binary_hint)
            elif inside and line.startswith("0x"):
                addrs.add(int(line.split()[0], 16))
    return addrs


def main():
    text, starts, sections = read_map(sys.argv[1])
    dumps = [executed(p) for p in sys.argv[2:]]
    everything = set().union(*dumps)
    low, high = min(everything), max(everything)
    # Callgrind gives addresses as the ELF file's own (base 0); older valgrinds gave a PIE's run-time
    # addresses, at valgrind's fixed load base.
    base = next((b for b in (0, 0x108000) if text[0] <= low - b and high - b < text[1]), None)
    if base is None:
        sys.exit(f"order.py: executed {low:#x}-{high:#x} is not inside .text {text[0]:#x}-{text[1]:#x}")
    seen = set()
    for addrs in dumps:
        for a in sorted(addrs):
            a -= base
            i = bisect.bisect_right(starts, a) - 1
            if i < 0 or not (sections[i][0] <= a < sections[i][1]):
                continue
            name = sections[i][2]
            if name not in seen:
                seen.add(name)
                print(name)


if __name__ == "__main__":
    main()
