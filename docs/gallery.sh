#!/usr/bin/env bash
# Remake the README gallery from the bundled pack with `moe generate` (no torch needed).
# Usage: bash docs/gallery.sh [PACK]   (writes docs/img/gallery-*.png)
set -euo pipefail
cd "$(dirname "$0")/.."
pack=${1:-moe-default}
out=docs/img
gen() { moe generate --pack "$pack" "$@"; }
code() { gen "$@" --out /tmp/moe-gallery-tmp.png | awk 'NR==1 {print $1}'; }  # first recipe code printed

# One grid per attribute: the same character (seed 7, other attributes fixed), each value of the attribute.
base=(--set style=cat --set eyes=big --set mouth=smile --set accessory=none --set color=cream --seed 7)
for attr in style eyes mouth accessory color; do
  gen "${base[@]}" --grid-attr "$attr" --size 128 --out "$out/gallery-$attr.png"
done
# Rerolls: the same conditions, eight seeds.
gen --set style=bunny --set eyes=sparkle --set accessory=bow --seed 100 --n 8 --size 128 --out "$out/gallery-reroll.png"
# Blend: eight steps from one avatar to another (latent slerp + condition-embedding mix).
a=$(code --set style=panda --set eyes=big --set color=mint --seed 11)
b=$(code --set style=fox --set eyes=happy --set color=pink --seed 12)
gen --recipe "$a" --blend "$b" --n 8 --size 128 --out "$out/gallery-blend.png"
# Sharpness at 256 px: an avatar made with 1.1.0 (its recipe code still draws with 1.1.0: 64 px, Lanczos)
# beside the same conditions and seed drawn by the newest version (64 px, then the pack's learned upscaler).
gen --recipe ARB_rWpnDgAFAAQAAAQAAAAAB08 --size 256 --out "$out/gallery-sharp-1.1.0.png"
gen --set style=cat --set eyes=wink --set mouth=smile --set accessory=none --set color=mint --seed 7 --size 256 \
  --out "$out/gallery-sharp-new.png"
# GAN (top row) vs VAE (bottom row), same seeds and conditions.
gen --set style=frog --set accessory=hat --seed 21 --n 6 --model both --size 128 --out "$out/gallery-gan-vs-vae.png"
rm -f /tmp/moe-gallery-tmp.png
echo "gallery written to $out/gallery-*.png"
