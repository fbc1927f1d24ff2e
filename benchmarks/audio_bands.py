"""How well a 48 kHz render of a clip matches the original, band by band (issue: "its spectrogram matches the
original's below 8 kHz"). Encodes every window of CLIP in one step, renders at --rate, and compares STFTs with the
same 32 ms window: log-spectral distance (dB) and band SNR (dB) for 0-2, 2-4, 4-6 and 6-7.6 kHz.

    python benchmarks/audio_bands.py RUN CLIP... [--rate 48000] [--hop SECONDS]
"""
from __future__ import annotations

import argparse
import json

from common import run_benchmark
from implicit_gon import GON
from signals import audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--hop", type=float, default=None, help="seconds (default: as `render`, a window / 8)")
    args = ap.parse_args()
    gon = GON.load(args.run, "cpu")
    for clip in args.clips:
        sig = audio.signal_for_render(gon, [clip], args.hop)
        x = audio.render_clip(gon, sig, 0, args.rate)[:, 0].numpy()
        orig = audio.clip_samples(sig, 0)[:, 0].numpy()
        same = audio.render_clip(gon, sig, 0, sig.sample_rate)[:, 0].numpy()
        print(json.dumps({"clip": clip, "rate": args.rate,
                          "render": audio.spectral_match(orig, sig.sample_rate, x, args.rate),
                          "at_training_rate": audio.spectral_match(orig, sig.sample_rate, same, sig.sample_rate)}))


if __name__ == "__main__":
    run_benchmark(main)
