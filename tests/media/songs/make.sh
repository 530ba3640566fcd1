#!/bin/sh
# Remakes the song fixtures (see README.md). Debian 12's ffmpeg 5.1.
set -eu
cd "$(dirname "$0")"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
tone="sine=frequency=440:sample_rate=44100:duration=3"
stereo="aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=48000:d=3"
# MP3, mono 44.1 kHz, VBR without a Xing header (the duration must come from the frames).
ff -f lavfi -i "$tone" -c:a libmp3lame -q:a 6 -write_xing 0 -map_metadata -1 -fflags +bitexact song.mp3
# AAC-LC in raw ADTS, stereo 48 kHz.
ff -f lavfi -i "$stereo" -c:a aac -b:a 64k -map_metadata -1 -fflags +bitexact -flags:a +bitexact song.aac
# AAC-LC in M4A (MP4 audio only), mono 44.1 kHz.
ff -f lavfi -i "$tone" -c:a aac -b:a 48k -map_metadata -1 -fflags +bitexact -flags:a +bitexact song.m4a
# Opus in Ogg, stereo (Opus always codes at 48 kHz).
ff -f lavfi -i "$stereo" -c:a libopus -b:a 48k -map_metadata -1 -fflags +bitexact song.opus
# Opus in WebM, mono.
ff -f lavfi -i "$tone" -c:a libopus -b:a 32k -map_metadata -1 -fflags +bitexact song.webm
# FLAC, mono 16-bit 22.05 kHz (FLAC is lossless: a low rate keeps the file small).
ff -f lavfi -i "sine=frequency=440:sample_rate=22050:duration=2" -c:a flac -sample_fmt s16 -map_metadata -1 -fflags +bitexact song.flac
# Refused: WAV, and a video file (MP4 with a video track).
ff -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.5" -c:a pcm_s16le -map_metadata -1 -fflags +bitexact song.wav
# Lying: song.flac in MP4 with its STREAMINFO's sample count cleared (0, "unknown", as streaming
# encoders write it) and every stts delta set to 2^31-1, so the container claims 541 hours for
# 2 s of frames (each FLAC frame's header says its own length).
ff -i song.flac -c:a copy -strict -2 -map_metadata -1 -fflags +bitexact -f mp4 flac-lying.m4a
python3 - flac-lying.m4a <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
at = d.find(b"dfLa") + 12  # the box type, its version and flags, the metadata block header
d[at + 13] &= 0xF0
d[at + 14:at + 18] = bytes(4)
at = d.find(b"stts") - 4
for k in range(struct.unpack(">I", d[at + 12:at + 16])[0]):
    count, _ = struct.unpack(">II", d[at + 16 + 8 * k:at + 24 + 8 * k])
    d[at + 16 + 8 * k:at + 24 + 8 * k] = struct.pack(">II", count, 0x7FFFFFFF)
open(sys.argv[1], "wb").write(d)
PY
