#!/usr/bin/env bash
# Same numbers before and after a refactor: the demo bench, the ISBI 5-fold bench and `train --cv`, with
# every deep cell bounded by epochs (not seconds), so each run is deterministic on a 2-thread CPU.
#   bash benchmarks/refactor_parity.sh OUT_DIR     (run it alone on the machine)
set -euo pipefail
OUT=${1:?usage: refactor_parity.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEG=${SEGSCOPE:-segscope}
SAMPLE=$ROOT/src/segscope/sample/isbi2012_sample
ISBI=$ROOT/../shared/data/isbi2012
UNET="-o unet_small.augment=em -o unet_small.crop_size=128 -o unet_small.batch_size=8 -o unet_small.lr=0.003"
UNET="$UNET -o unet_small.epochs=3 -o unet_small.samples_per_epoch=32"
mkdir -p "$OUT"
echo "== demo bench (holdout:0.3 of the bundled sample, U-Net 3 epochs x 32 crops)"
$SEG bench --data "$SAMPLE" --methods otsu,adaptive_threshold,watershed,unet_small --cv holdout:0.3 \
  $UNET --time-budget-per-method 1h --threads 2 --workers 2 --gallery 2 --quiet --out "$OUT/demo"
echo "== ISBI 2012 bench (kfold:5 over 30 slices, U-Net 2 epochs x 48 crops of 256)"
ISBI_UNET="-o unet.base_channels=16 -o unet.augment=em -o unet.crop_size=256 -o unet.lr=0.003"
ISBI_UNET="$ISBI_UNET -o unet.epochs=2 -o unet.samples_per_epoch=48"
$SEG bench --data "$ISBI" --methods otsu,adaptive_threshold,watershed,unet --cv kfold:5 $ISBI_UNET \
  --time-budget-per-method 1h --threads 2 --workers 2 --gallery 2 --quiet --out "$OUT/isbi"
echo "== train --cv kfold:3 (bundled sample, U-Net 2 epochs x 32 crops)"
$SEG train --data "$SAMPLE" --model unet_small --cv kfold:3 --epochs 2 --crop-size 128x128 --augment em \
  --lr 0.003 -o samples_per_epoch=32 --quiet --out "$OUT/cv"
