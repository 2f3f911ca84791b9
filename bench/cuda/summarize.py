#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns the RESULT lines of bench_cuda and tans_torch.py into the short markdown table that
scripts/cuda_check prints last (targets from issue 8)."""
import sys

r = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3 and p[0] == "RESULT":
        r[p[1]] = float(p[2])


def g(k):
    return r.get(k)


rows = []
copy = g("copy_gbs")
if copy:
    rows.append(("D2D copy (read+write)", f"{copy:.0f} GB/s", "ceiling", ""))
for key, name in [("select_row24", "select row-wise 2:4"), ("select_row14", "select row-wise 1:4"),
                  ("select_tr24", "select transposable 2:4"), ("select_tr14", "select transposable 1:4"),
                  ("perturb_frechet", "Frechet perturbation"), ("perturb_uniform", "uniform perturbation"),
                  ("tans_pass1", "TANS pass 1 (V,P,U_base)"), ("tans_pass2", "TANS pass 2 (RMS of O)"),
                  ("tans_pass3", "TANS pass 3 (blend+update)"), ("adam_pass", "Adam fused pass")]:
    f = g(key + "_frac")
    if f is not None:
        rows.append((name, f"{g(key + '_gbs'):.0f} GB/s", f"{100 * f:.0f}% of copy", "met" if f >= 0.8 else "MISSED (<80%)"))
for shape in ["4096x4096", "11008x4096"]:
    s = g(f"sparse24_{shape}_speedup")
    if s is not None:
        rows.append((f"2:4 cuSPARSELt vs cuBLAS bf16 {shape}, 8192 tok",
                     f"{g(f'sparse24_{shape}_sparse_ms'):.3f} vs {g(f'sparse24_{shape}_dense_ms'):.3f} ms",
                     f"{s:.2f}x", "met" if s >= 1.3 else "MISSED (<1.3x)"))
    for t in [1, 4, 16]:
        # Figure of record: graph replay, dense and 1:4 alternating (median of pair ratios);
        # stream-launched figures are shown beside it.
        k = f"decode14_{shape}_t{t}"
        s = g(f"{k}_graph_speedup")
        if s is not None:
            tgt = ("met" if s >= 2.5 else "MISSED (<2.5x)") if t == 1 else ""
            rows.append((f"1:4 decode vs cuBLAS {shape}, {t} tok (graph replay)",
                         f"{g(f'{k}_graph_sparse_us'):.1f} vs {g(f'{k}_graph_dense_us'):.1f} us "
                         f"(stream launches {g(f'{k}_speedup'):.2f}x)",
                         f"{s:.2f}x", tgt))
for shape in ["4096x4096", "11008x4096"]:
    for prec in ["native", "tf32", "bf16"]:
        a = g(f"tans_step_{shape}_{prec}_ms")
        b = g(f"torch_tans_step_{shape}_{prec}_ms")
        if a is not None:
            ratio = f"{b / a:.2f}x faster" if b else "n/a"
            rows.append((f"TANS step {shape} NS {prec}: ours vs torch", f"{a:.2f} vs {b:.2f} ms" if b else f"{a:.2f} ms", ratio, ""))
c = g("ch2_l3n_4096_ms")
if c is not None:
    rows.append(("CH2-L3n scores 4096x4096", f"{c:.2f} ms", "", ""))
print("| measurement | value | ratio | target |")
print("|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
