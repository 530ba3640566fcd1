#!/usr/bin/env python3
"""Makes the beat-tracking benchmark set (issue 25, point 3) here, with no download: pieces from
music21's bundled corpus, given tempos from 60 to 180 BPM (some changing mid-piece, some swung),
several General MIDI instruments and, on half of them, a drum kit, rendered with Debian's
fluidsynth and FluidR3 soundfont and encoded to MP3 and AAC (M4A) with Debian's ffmpeg. The true
beats come from the same timing that places the notes: every beat of the score's meter (a quarter
note in 2/4, 3/4 and 4/4, the only meters taken), mapped through the track's tempo map.

    sudo apt-get install fluidsynth fluid-soundfont-gm ffmpeg
    python3 -m venv /tmp/beats-venv && /tmp/beats-venv/bin/pip install music21 mido mir_eval librosa
    /tmp/beats-venv/bin/python bench/beats/make_set.py OUT_DIR [--tracks 30] [--seconds 30]

Writes OUT_DIR/NAME.mp3, NAME.m4a and OUT_DIR/set.json (per track: files, beats, downbeats,
tempo, what was varied), plus OUT_DIR/long.mp3, 4 minutes, for the CPU and memory figures.
With --small, low-bitrate mono files and no long.mp3: tests/media/beats was made with
`--tracks 3 --seconds 12 --small`.
Deterministic: the same corpus version gives the same set.
"""

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import mido
from music21 import corpus, meter

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 44100
# General MIDI programs for the parts, top voice first; the lowest part gets a bass.
LEADS = [0, 73, 40, 71, 56, 11, 24, 19, 52, 65]
BASSES = [32, 33, 42, 70, 0]


def pieces():
    """(name, path) of the corpus pieces tried, in a fixed order: chorales, string quartets,
    fiddle tunes."""
    bach = sorted(corpus.getComposer("bach"), key=str)
    quartets = sorted(corpus.getComposer("mozart") + corpus.getComposer("haydn"), key=str)
    yield from ((p.stem, p) for p in bach[::9])
    yield from ((p.stem, p) for p in quartets)


def beat_grid(score):
    """Quarter-note offsets of the beats and of the bar starts, and the meter's beats per bar;
    None for a meter whose beat is not a quarter note or that changes."""
    sigs = {(ts.numerator, ts.denominator) for ts in score.recurse().getElementsByClass(meter.TimeSignature)}
    if len(sigs) != 1:
        return None
    (num, den), = sigs
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
            for p in n.pitches:
                out.append((float(n.offset), float(n.quarterLength), p.midi, i))
    return out


class Timing:
    """Quarter-note positions → seconds: a tempo map (constant, a step, or a ramp) and an optional
    swing of the off-beat eighths (played 2/3 of the way through the beat instead of half)."""

    def __init__(self, bpm, change, swing, span):
        self.bpm, self.change, self.swing, self.span = bpm, change, swing, span
        self.step = 1 / 48
        self.table = [0.0]
        q = 0.0
        while q < span + 8:
            self.table.append(self.table[-1] + self.step * 60.0 / self.tempo(q + self.step / 2))
            q += self.step

    def tempo(self, q):
        if self.change == "step":
            return self.bpm * (1.2 if q >= self.span / 2 else 1.0)
        if self.change == "ramp":
            return self.bpm * (1.0 + 0.2 * min(q / self.span, 1.0))
        return self.bpm

    def seconds(self, q):
        if self.swing:
            beat = int(q // 1)
            frac = q - beat
            frac = frac * 4 / 3 if frac < 0.5 else 2 / 3 + (frac - 0.5) * 2 / 3
            q = beat + frac
        i = int(q / self.step)
        rest = q - i * self.step
        i = min(i, len(self.table) - 2)
        return self.table[i] + (self.table[i + 1] - self.table[i]) * rest / self.step


def drum_notes(beats, bars, num):
    """A kit under the piece: kick on the bar and (in 4) the third beat, snare on the back beats,
    closed hi-hat on every eighth."""
    out = []
    barset = set(bars)
    for b in beats:
        pos = None
        for start in bars:
            if start <= b + 1e-6:
                pos = round(b - start)
        if b in barset or (num == 4 and pos == 2):
            out.append((b, 0.5, 36, 110))
        elif pos is not None:
            out.append((b, 0.5, 38, 95))
        out.append((b, 0.25, 42, 70))
        out.append((b + 0.5, 0.25, 42, 55))
    return out


def write_midi(path, events, programs):
    """Notes at absolute seconds into a MIDI file whose ticks are milliseconds (60 BPM, 1000 ticks
    a beat), so the file plays exactly the times given."""
    mid = mido.MidiFile(ticks_per_beat=1000)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    for ch, prog in programs.items():
        track.append(mido.Message("program_change", channel=ch, program=prog, time=0))
    msgs = []
    for start, end, ch, pitch, vel in events:
        msgs.append((round(start * 1000), 1, ch, pitch, vel))
        msgs.append((round(end * 1000), 0, ch, pitch, 0))
    msgs.sort()
    now = 0
    for t, on, ch, pitch, vel in msgs:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=ch, note=pitch, velocity=vel, time=t - now))
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
    timing = Timing(bpm, change, swing, max(beats_q) + 1)
    parts = max(i for *_, i in notes) + 1
    programs = {}
    for i in range(parts):
        programs[i] = rng.choice(BASSES) if i == parts - 1 and parts > 1 else rng.choice(LEADS)
    barset = set(bars_q)
    events = []
    for off, dur, pitch, part in notes:
        start = timing.seconds(off)
        if start >= seconds:
            continue
        # A player's accent: the bar's first beat a little louder, off-beats a little softer.
        vel = 92 if off in barset else (80 if abs(off - round(off)) < 1e-6 else 70)
        end = min(timing.seconds(off + dur) - 0.01, seconds)
        events.append((start, max(end, start + 0.05), part, pitch, vel))
    if drums:
        programs[9] = 0
        for off, dur, pitch, vel in drum_notes(beats_q, bars_q, num):
            start = timing.seconds(off)
            if start < seconds:
                events.append((start, start + 0.1, 9, pitch, vel))
    first_note = min(e[0] for e in events)
    last_note = max(e[1] for e in events)
    beats = [round(timing.seconds(b), 4) for b in beats_q if first_note - 1e-3 <= timing.seconds(b) <= min(seconds, last_note)]
    downbeats = [round(timing.seconds(b), 4) for b in bars_q if first_note - 1e-3 <= timing.seconds(b) <= min(seconds, last_note)]
    mid = out / f"{stem}.mid"
    write_midi(mid, events, programs)
    files = render(mid, stem, out, small)
    gaps = sorted(b - a for a, b in zip(beats, beats[1:]))
    return {
        "name": stem, "files": files, "bpm": bpm, "tempo_bpm": round(60 / gaps[len(gaps) // 2], 2),
        "change": change, "swing": swing, "drums": drums, "beats_per_bar": num,
        "programs": programs, "beats": beats, "downbeats": downbeats,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tracks", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--small", action="store_true", help="low-bitrate mono files and no long.mp3 (test fixtures)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(25)
    chosen = []
    for name, path in pieces():
        score = corpus.parse(path)
        grid = beat_grid(score)
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
        swing = i % 4 == 1
        drums = i % 2 == 0
        stem = f"{i:02d}_{name.replace('.', '_')}_{bpm}"
        print(f"{stem}: {change}, swing={swing}, drums={drums}", file=sys.stderr)
        tracks.append(make_track(stem, score, grid, bpm, change, swing, drums, args.seconds, rng, out, small=args.small))
    if args.small:
        (out / "set.json").write_text(json.dumps({"tracks": tracks}, indent=1))
        return
    name, score, grid = chosen[0]
    long = make_track("long", score, grid, 120, "none", False, True, 240.0, rng, out, loop_to=240.0)
    (out / "long.m4a").unlink()
    (out / "set.json").write_text(json.dumps({"tracks": tracks, "long": long}, indent=1))


if __name__ == "__main__":
    main()
