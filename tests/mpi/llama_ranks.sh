#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tiny_llama (CHTs24 1:4, a tiny decoder) trained by 1 rank and by 2 ranks under mpiexec with the
# same global batch: the two validation perplexities agree within 1e-3 relative (the 2-rank run
# sums the shards' mean gradients in rank order, so it differs from one process only by rounding).
#   llama_ranks.sh TINY_LLAMA OUT_PREFIX MPIEXEC [MPIEXEC FLAGS...]   (the rank count is appended)
set -eu
bin=$1 out=$2
shift 2
args="--method chts24 --steps 16 --batch 4 --d-model 16 --layers 1 --heads 2 --hidden 32
      --context 16 --eval-tokens 512 --evals 1 --no-export"
ppl() { sed -n 's/^| chts24 | [^|]* | \([0-9.]*\) |.*/\1/p' | head -1; }
# shellcheck disable=SC2086
one=$("$bin" $args --out "$out-1" | ppl)
# shellcheck disable=SC2086
two=$("$@" 2 "$bin" $args --out "$out-2" | ppl)
echo "chts24 validation perplexity: 1 rank ${one:-?}, 2 ranks ${two:-?}"
awk -v a="$one" -v b="$two" 'BEGIN { if (a == "" || b == "") exit 1; d = a - b;
  if (d < 0) d = -d; exit (d <= 1e-3 * a) ? 0 : 1 }'
