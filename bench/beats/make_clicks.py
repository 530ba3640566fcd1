#!/usr/bin/env python3
"""Makes tests/media/beats/step_clicks.mp3 and step_clicks.json: 40 s of quarter-note clicks
(20 ms bursts of decaying noise) with softer eighths between, over a floor of hiss, at 96 BPM and
then, from 20 s on, 120 BPM; the true beat times go in the JSON. A tempo step with nothing else
to hear: a tracker held to one period for the whole song gets one half of it wrong.

    target/beats-venv/bin/python bench/beats/make_clicks.py tests/media/beats
"""

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

RATE = 22050
SECONDS = 40.0


def main():
    out = Path(sys.argv[1])
    rng = np.random.default_rng(5)
    beats = [0.5]
    while beats[-1] < SECONDS - 0.5:
        beats.append(beats[-1] + 60.0 / (96.0 if beats[-1] < 20.0 else 120.0))
    clicks = [(t, 1.0) for t in beats] + [((a + b) / 2, 0.3) for a, b in zip(beats, beats[1:])]
    audio = np.zeros(int(SECONDS * RATE))
    n = int(0.02 * RATE)
    decay = np.exp(-np.arange(n) / (0.004 * RATE))
    for t, gain in clicks:
        seg = audio[int(t * RATE):int(t * RATE) + n]
        seg += gain * 0.5 * rng.uniform(-1, 1, len(seg)) * decay[:len(seg)]
    audio += 0.03 * rng.uniform(-1, 1, len(audio))
    wav = out / "step_clicks.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-b:a", "32k",
                    str(out / "step_clicks.mp3")], check=True)
    wav.unlink()
    (out / "step_clicks.json").write_text(json.dumps({"beats": [round(t, 4) for t in beats]}, indent=1))


if __name__ == "__main__":
    main()
