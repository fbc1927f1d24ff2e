#!/usr/bin/env bash
# Rebuild tests/data/old_runs/ with the code of commit 221d0cb (before the redesign of issue 22):
#   git worktree add /tmp/old221 221d0cb
#   OLD=/tmp/old221 PYTHON=.venv/bin/python bash tests/data/old_runs/make.sh tests/data/old_runs
# Each run is tiny (SIREN 2 x 24, latent 8, 300-400 steps), on CPU, one thread; inputs/ holds the training data
# (a synthetic 0.3 s WAV and a box mesh) and the image the encode verb reads.
set -euo pipefail
DEST=$(realpath "$1")
export PYTHONPATH=$OLD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 IMPLICIT_GON_CACHE=$(mktemp -d)
G="$PYTHON -m cli"
IN=$DEST/inputs
TINY="--hidden 24 --layers 2 --latent-dim 8 --ckpt-every 100000 --device cpu --quiet"
cd "$DEST"

# images: the bundled 8x8 digits
rm -rf digits && $G fit images --dataset digits --steps 300 $TINY --out digits
$G eval digits --json --device cpu > digits/eval.json
$G render digits --res 16 --n 4 --out digits/render.png --device cpu
$G encode digits "$IN/digit.png" --out digits/encode.npy --device cpu
$G decode digits digits/encode.npy --res 32 --out digits/decode.png --device cpu
$G sample digits --n 4 --seed 0 --out digits/sample.png --device cpu
$G interpolate digits --pairs 1 --frames 4 --out digits/interpolate.png --device cpu

# audio: one synthetic clip
rm -rf audio && $G fit audio --data "$IN/tone.wav" --steps 300 $TINY --out audio
$G eval audio --data "$IN/tone.wav" --json --device cpu > audio/eval.json
$G render audio --input "$IN/tone.wav" --sample-rate 24000 --out audio/render-24k.wav --device cpu
$G sample audio --n 1 --seconds 0.25 --seed 0 --out audio/sample.wav --device cpu

# SDF: one box mesh
rm -rf sdf && $G fit sdf --data "$IN/box.obj" --samples 4096 --steps 400 $TINY --out sdf
$G eval sdf --data "$IN/box.obj" --json --device cpu > sdf/eval.json
$G render sdf --input "$IN/box.obj" --res 32 --out sdf/render.png --device cpu
$G export-mesh sdf --input "$IN/box.obj" --res 16 --out sdf/mesh.ply --device cpu
# the old API had no volume(): its export-mesh's own function, on the same latent
$PYTHON - <<'PY'
import numpy as np
from implicit_gon import GON
from signals import sdf
gon = GON.load("sdf", device="cpu")
z, _, _ = sdf.latent_for(gon, input_="inputs/box.obj")
np.save("sdf/volume.npy", sdf.volume(sdf._field(gon, z), 12))
PY
rm -f digits/.lock audio/.lock sdf/.lock
