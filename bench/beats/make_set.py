#!/usr/bin/env python3
"""Makes the beat-tracking benchmark set (issue 25, point 3) here, with no download: pieces from
music21's bundled corpus (string quartets, fiddle tunes, madrigals, a rag, songs, piano pieces
and a few Bach chorales, taken in turn so any prefix of the set mixes them), given tempos from 60
to 180 BPM (some changing mid-piece, some swung), several General MIDI instruments and, on half of
them, a drum kit in one of two patterns, rendered with Debian's fluidsynth and FluidR3 soundfont
and encoded to MP3 and AAC (M4A) with Debian's ffmpeg.

The MIDI file is written in beats (480 ticks a quarter note) with real tempo events: one for a
steady piece, a second at a bar line half-way through the clip for a step (+25 % or -20 %), one
on every beat for a ramp (to +20 % or -20 % over the clip). Swung eighths are written late (2/3
of the way through the beat) in ticks. The true beats are every beat of the score's meter (a
quarter note in 2/4, 3/4 and 4/4, the only meters taken), read back from the written file with
mido: their ticks through the file's own tempo events, the same map fluidsynth plays.

    sudo apt-get install fluidsynth fluid-soundfont-gm ffmpeg
    python3 -m venv target/beats-venv && target/beats-venv/bin/pip install music21 mido mir_eval librosa
    target/beats-venv/bin/python bench/beats/make_set.py OUT_DIR [--tracks 40] [--seconds 30]

Writes OUT_DIR/NAME.mp3, NAME.m4a and OUT_DIR/set.json (per track: files, beats, downbeats,
tempo, what was varied), plus OUT_DIR/long.mp3, 4 minutes, for the CPU and memory figures.
With --small, low-bitrate mono files and no long.mp3: tests/media/beats was made with
`--tracks 3 --seconds 12 --small` (by this script as it was before the corpus was widened: its
README says which clips).
Deterministic: the same corpus version gives the same set.
"""

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import mido
from music21 import corpus, harmony, meter

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 44100
# General MIDI programs for the parts, top voice first; the lowest part gets a bass.
LEADS = [0, 73, 40, 71, 56, 11, 24, 19, 52, 65, 4, 6, 48, 25, 68, 21, 46, 61]
BASSES = [32, 33, 34, 42, 70, 0, 43]
TICKS = 480


def pieces():
    """Corpus paths to try, in a fixed order: one from each kind of music in turn, so any first N
    mix string quartets, fiddle tunes (hornpipes and reels), madrigals, single pieces (a rag, songs,
    piano and chamber pieces) and Bach chorales, which are only one kind in five (the analysis'
    rules were first set on chorales). Only files music21 parses in seconds: the big Beethoven
    scores are left out."""
    paths = sorted(str(p) for p in corpus.getPaths())

    def pick(sub, end="", every=1):
        return [p for p in paths if sub in p and p.endswith(end)][::every]

    quartets = [p for p in pick("/mozart/", ".mxl") + pick("/haydn/opus1no1/", ".mxl") if "k458" not in p]
    fiddle = [p for pair in zip(pick("/ryansMammoth/", "Hornpipe.abc", 15), pick("/ryansMammoth/", "Reel.abc", 40))
              for p in pair]
    madrigals = pick("/monteverdi/", ".mxl", 4)
    singles = [p for sub in ("/joplin/", "/schubert/", "/handel/", "/cpebach/", "/weber/", "/corelli/",
                             "/schumann_robert/", "/schumann_clara/", "/chopin/", "/beach/", "/liliuokalani/",
                             "/johnson_j_r/", "/leadSheet/fosterBrownHair")
               for p in pick(sub) if not p.endswith((".krn", ".rntxt"))]
    chorales = pick("/bach/", ".mxl", 9)
    kinds = [quartets, fiddle, madrigals, singles, chorales]
    for i in range(max(map(len, kinds))):
        for kind in kinds:
            if i < len(kind):
                p = Path(kind[i])
                yield (f"{p.parent.name}_{p.stem}" if p.stem.startswith("movement") else p.stem)[:24], p


def beat_grid(score):
    """Quarter-note offsets of the beats and of the bar starts, and the meter's beats per bar;
    None for a meter whose beat is not a quarter note (2/2 counts as four quarters) or that
    changes."""
    sigs = {(ts.numerator, ts.denominator) for ts in score.recurse().getElementsByClass(meter.TimeSignature)}
    if len(sigs) != 1:
        return None
    (num, den), = sigs
    if (num, den) == (2, 2):  # cut time (the hornpipes): its four quarter notes are the beats
        num, den = 4, 4
    if den != 4 or num not in (2, 3, 4):
        return None
    part = score.parts[0]
    bars, beats = [], []
    for m in part.getElementsByClass("Measure"):
        start = float(m.offset)
        length = float(m.duration.quarterLength)
        full = num * 1.0
        if length < full - 1e-6:  # a pickup: its beats end where the next bar starts
            first = start + length - int(length)
            beats += [first + i for i in range(int(length)) if first + i >= start - 1e-6]
            continue
        bars.append(start)
        beats += [start + i for i in range(num)]
    return sorted(set(beats)), bars, num


def notes_of(score):
    """(quarter offset, quarter length, midi pitch, part index) of every sounding note."""
    out = []
    for i, part in enumerate(score.parts):
        for n in part.stripTies().flatten().notes:
            # Chord symbols are labels, not notes; grace notes take no time.
            if isinstance(n, harmony.ChordSymbol) or n.quarterLength <= 0:
                continue
            for p in n.pitches:
                out.append((float(n.offset), float(n.quarterLength), p.midi, i))
    return out


def swung(q, swing):
    """A quarter-note position as played: with swing, an eighth off the beat comes 2/3 of the way
    through the beat rather than half (the notes between follow linearly)."""
    if not swing:
        return q
    beat = q // 1
    frac = q - beat
    return beat + (frac * 4 / 3 if frac < 0.5 else 2 / 3 + (frac - 0.5) * 2 / 3)


def tempo_events(bpm, change, bars_q, clip_q):
    """(tick, BPM) tempo events: one for a steady piece; for a step, a second at the bar line
    nearest half-way through the clip (+25 %, or -20 % where that would pass 180); for a ramp, one
    on every beat, to +20 % (or -20 %) at the clip's end."""
    up = bpm * 1.25 <= 180
    if change == "step":
        at = min(bars_q, key=lambda b: abs(b - clip_q / 2))
        return [(0, bpm), (round(at * TICKS), bpm * (1.25 if up else 0.8))]
    if change == "ramp":
        factor = 0.2 if bpm * 1.2 <= 180 else -0.2
        return [(q * TICKS, bpm * (1 + factor * min(q / clip_q, 1.0))) for q in range(int(clip_q) + 1)]
    return [(0, bpm)]


def seconds_of(tick, tempos):
    """Seconds at `tick` under (tick, BPM) tempo events, sorted, the first at tick 0."""
    t = 0.0
    for (at, bpm), nxt in zip(tempos, tempos[1:] + [(None, None)]):
        end = tick if nxt[0] is None else min(tick, nxt[0])
        if end <= at:
            break
        t += (end - at) / TICKS * 60.0 / bpm
    return t


def tempos_in(path):
    """The (tick, BPM) tempo events of a written MIDI file, read back with mido."""
    out, now = [], 0
    for msg in mido.MidiFile(path).tracks[0]:
        now += msg.time
        if msg.type == "set_tempo":
            out.append((now, mido.tempo2bpm(msg.tempo)))
    return out


def drum_notes(beats, bars, num, pattern):
    """A kit under the piece, (quarter offset, length, note, velocity). Pattern 0: kick on the bar
    and (in 4) the third beat, snare on the back beats, closed hi-hat on every eighth. Pattern 1:
    kick on every beat, an open hi-hat on the off-beats and a crash on the bar."""
    out = []
    barset = set(bars)
    for b in beats:
        pos = None
        for start in bars:
            if start <= b + 1e-6:
                pos = round(b - start)
        if pattern == 1:
            out.append((b, 0.5, 36, 105))
            out.append((b + 0.5, 0.25, 46, 60))
            if b in barset:
                out.append((b, 0.5, 49, 80))
            continue
        if b in barset or (num == 4 and pos == 2):
            out.append((b, 0.5, 36, 110))
        elif pos is not None:
            out.append((b, 0.5, 38, 95))
        out.append((b, 0.25, 42, 70))
        out.append((b + 0.5, 0.25, 42, 55))
    return out


def write_midi(path, events, programs, tempos):
    """Notes at absolute ticks (TICKS a quarter note) and the tempo events into a MIDI file."""
    mid = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    msgs = [(tick, 0, "tempo", round(mido.bpm2tempo(bpm)), 0, 0) for tick, bpm in tempos]
    for start, end, ch, pitch, vel in events:
        msgs.append((start, 2, "note_on", ch, pitch, vel))
        msgs.append((end, 1, "note_off", ch, pitch, 0))
    msgs.sort()
    for ch, prog in programs.items():
        track.append(mido.Message("program_change", channel=ch, program=prog, time=0))
    now = 0
    for t, _, kind, a, pitch, vel in msgs:
        if kind == "tempo":
            track.append(mido.MetaMessage("set_tempo", tempo=a, time=t - now))
        else:
            track.append(mido.Message(kind, channel=a, note=pitch, velocity=vel, time=t - now))
        now = t
    mid.save(path)


def render(mid, stem, out, small=False):
    wav = out / f"{stem}.wav"
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(RATE), "-F", str(wav), SOUNDFONT, str(mid)],
                   check=True, stdout=subprocess.DEVNULL)
    files = []
    codecs = (("mp3", ["-c:a", "libmp3lame", "-q:a", "4"]), ("m4a", ["-c:a", "aac", "-b:a", "160k"]))
    if small:  # the test fixtures: mono 22.05 kHz at 32 kb/s, a few tens of KB each
        low = ["-ac", "1", "-ar", "22050", "-b:a", "32k"]
        codecs = (("mp3", ["-c:a", "libmp3lame", *low]), ("m4a", ["-c:a", "aac", *low]))
    for ext, codec in codecs:
        dst = out / f"{stem}.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *codec, str(dst)], check=True)
        files.append(dst.name)
    wav.unlink()
    mid.unlink()
    return files


def make_track(stem, score, grid, bpm, change, swing, drums, seconds, rng, out, loop_to=None, small=False):
    beats_q, bars_q, num = grid
    notes = notes_of(score)
    span_q = max(b for b in beats_q) + 1
    if loop_to:  # the long file: the piece repeated to fill the time
        reps = 1
        while reps * span_q * 60 / bpm < loop_to:
            reps += 1
        notes = [(o + r * span_q, d, p, i) for r in range(reps) for (o, d, p, i) in notes]
        beats_q = [b + r * span_q for r in range(reps) for b in beats_q]
        bars_q = [b + r * span_q for r in range(reps) for b in bars_q]
        seconds = loop_to
    tempos = tempo_events(bpm, change, bars_q, seconds * bpm / 60)
    tick = lambda q: round(swung(q, swing) * TICKS)  # noqa: E731
    at = lambda q: seconds_of(tick(q), tempos)  # noqa: E731
    parts = max(i for *_, i in notes) + 1
    programs = {}
    for i in range(parts):
        programs[i] = rng.choice(BASSES) if i == parts - 1 and parts > 1 else rng.choice(LEADS)
    barset = set(bars_q)
    events = []
    for off, dur, pitch, part in notes:
        if at(off) >= seconds:
            continue
        # A player's accent: the bar's first beat a little louder, off-beats a little softer.
        vel = 92 if off in barset else (80 if abs(off - round(off)) < 1e-6 else 70)
        end = max(tick(off + dur) - 10, tick(off) + 24)
        events.append((tick(off), end, part, pitch, vel))
    if drums:
        programs[9] = 0
        for off, dur, pitch, vel in drum_notes(beats_q, bars_q, num, drums - 1):
            if at(off) < seconds:
                events.append((tick(off), tick(off) + 48, 9, pitch, vel))
    mid = out / f"{stem}.mid"
    write_midi(mid, events, programs, tempos)
    # The truth from the file as written: the beats' ticks through its own tempo events.
    written = tempos_in(mid)
    first_note = seconds_of(min(e[0] for e in events), written)
    last_note = min(seconds, seconds_of(max(e[1] for e in events), written))
    timed = lambda qs: [round(seconds_of(tick(q), written), 4) for q in qs]  # noqa: E731
    beats = [t for t in timed(beats_q) if first_note - 1e-3 <= t <= last_note]
    downbeats = [t for t in timed(bars_q) if first_note - 1e-3 <= t <= last_note]
    files = render(mid, stem, out, small)
    gaps = sorted(b - a for a, b in zip(beats, beats[1:]))
    return {
        "name": stem, "files": files, "bpm": bpm, "tempo_bpm": round(60 / gaps[len(gaps) // 2], 2),
        "first_bpm": round(60 / (beats[1] - beats[0]), 2),
        "last_bpm": round(60 / (beats[-1] - beats[-2]), 2),
        "change": change, "swing": swing, "drums": drums, "beats_per_bar": num,
        "programs": programs, "beats": beats, "downbeats": downbeats,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--small", action="store_true", help="low-bitrate mono files and no long.mp3 (test fixtures)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(25)
    chosen = []
    for name, path in pieces():
        try:
            score = corpus.parse(path)
            grid = beat_grid(score) if hasattr(score, "parts") and len(score.parts) else None
        except Exception as e:  # a file music21 cannot read is not taken
            print(f"{name}: skipped ({e})", file=sys.stderr)
            continue
        if grid and len(grid[0]) >= 24:
            chosen.append((name, score, grid))
        if len(chosen) == args.tracks:
            break
    n = len(chosen)
    tempos = [round(60 + 120 * i / max(n - 1, 1)) for i in range(n)]
    rng.shuffle(tempos)
    tracks = []
    for i, ((name, score, grid), bpm) in enumerate(zip(chosen, tempos)):
        change = ["none", "step", "ramp"][i % 3]
        swing = i % 4 == 1 or i % 8 == 2
        drums = [1, 0, 2, 0][i % 4]  # 0: none, 1 or 2: drum_notes' pattern 0 or 1
        stem = f"{i:02d}_{name.replace('.', '_').replace(' ', '_')}_{bpm}"
        print(f"{stem}: {change}, swing={swing}, drums={drums}", file=sys.stderr, flush=True)
        tracks.append(make_track(stem, score, grid, bpm, change, swing, drums, args.seconds, rng, out, small=args.small))
    if args.small:
        (out / "set.json").write_text(json.dumps({"tracks": tracks}, indent=1))
        return
    name, score, grid = chosen[0]
    long = make_track("long", score, grid, 120, "none", False, 1, 240.0, rng, out, loop_to=240.0)
    (out / "long.m4a").unlink()
    (out / "set.json").write_text(json.dumps({"tracks": tracks, "long": long}, indent=1))


if __name__ == "__main__":
    main()
