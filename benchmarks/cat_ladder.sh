#!/usr/bin/env bash
# The course's ladder of cat classifiers on catvnoncat, trained one after another, each evaluated on dev at
# training time and on the test file once at the end. Model selection uses dev only (metrics.json).
# Usage: benchmarks/cat_ladder.sh ../shared/data/catvnoncat runs/ladder    (about 30 minutes on 2 CPU cores)
set -euo pipefail
DATA=${1:?catvnoncat folder}
OUT=${2:-runs/ladder}
mkdir -p "$OUT"
train() { name=$1; shift; dlapps cat train --data "$DATA" --output "$OUT/$name" --overwrite --json "$@" > "$OUT/$name.train.json"; }
train logreg   --model logreg --no-augment --dropout 0 --learning-rate 0.005 --epochs 300 --patience 40
train mlp      --model mlp --hidden-units 20 7 5 --dropout 0 --epochs 300 --patience 40
train cnn      --model cnn --epochs 150 --patience 30
train resnet   --model resnet --epochs 150 --patience 30
train imagenet --model imagenet
train transfer --model transfer --epochs 60 --patience 12 --backbone-image-size 160
for name in logreg mlp cnn resnet imagenet transfer; do
  dev=$(python -c "import json;print(json.load(open('$OUT/$name/metrics.json'))['dev_accuracy'])")
  test=$(dlapps cat evaluate --data "$DATA" --model-dir "$OUT/$name" --json | python -c "import json,sys;print(json.load(sys.stdin)['accuracy'])")
  echo "$name dev=$dev test=$test" | tee -a "$OUT/ladder.txt"
done
