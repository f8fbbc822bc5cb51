#!/usr/bin/env bash
# Rebuild the pictures in the README (samples/gallery/) with the CLI itself.
# Run from the repository root after `pip install .`: bash samples/make_gallery.sh
set -euo pipefail
G=samples/gallery
R=$(mktemp -d)
mkdir -p "$G"
# The original project's three networks on the digit, side by side
for c in leaky_relu sigmoid mixed; do
  nncompress train samples/digit_3.png -c configs/$c.yaml --scale 10 -o "$R/$c" -q
done
nncompress animate "$R/leaky_relu" "$R/sigmoid" "$R/mixed" --labels "leaky ReLU,sigmoid,mixed (BCE)" \
  --size 160 --fps 10 -o "$G/three_networks.gif" -q
# The default network: a smooth 10x rendering of a 28x28 image
nncompress train samples/digit_3.png --scale 10 -o "$R/default" -q
cp "$R/default/digit_3_x10.png" "$G/digit_3_x10.png"
cp "$R/default/digit_3_training.gif" "$G/digit_3_training.gif"
nncompress info "$R/default/model.npz" > "$G/info.txt"
# A photograph fitted by SIREN
nncompress train samples/chelsea.png -c configs/siren.yaml -o "$R/siren" -q
cp "$R/siren/chelsea_training.gif" "$G/chelsea_siren_training.gif"
# Patch mode against bicubic, x2 and x4 crops
python samples/compare_crops.py "$G"
# The built-in x2 prior taught document pages (2.5 minutes of pretraining), against it untaught
python benchmarks/make_documents.py "$R/docs"
nncompress pretrain "$R/docs/train" -s 2 --init builtin -e 4 --steps 200 --lr 0.0003 -o "$R/docs_x2.npz" -q
python samples/compare_documents.py "$R/docs/test/test00.png" "$R/docs_x2.npz" "$G"
