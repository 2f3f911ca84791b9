#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Baseline for bench_cuda's TANS step: the same step (chtsnm Sec. 3.2 equations, ALGORITHMS.md
"TANS") written in eager PyTorch, timed on the same GPU with CUDA events (median of 10 after 3
warm-up steps, gamma = gamma_NS so Newton-Schulz runs every step, as in bench_cuda).

  G_M = M G;  V = b2 V + (1-b2) G_M^2;  G^ = G_M / (sqrt(V) + eps)
  P = b1 P + (1-b1) G^;  U_base = M [(1-b1) G^ + b1 P]
  O = NS_5(U_base / (||U_base||_F + 1e-7))   (Table A4; lower-dimensional side)
  s = RMS_M(U_base) / (RMS_M(M O) + eps);  U = U_base + gamma (s M O - U_base)
  W <- (1 - lr wd) W - lr sqrt(d_out / d_in) U   on active entries

Precisions: native (fp32 matmuls, TF32 off), tf32 (TF32 matmuls), bf16 (NS iterates in bf16).
Prints "RESULT torch_tans_step_<R>x<C>_<prec>_ms <ms>" lines.
"""
import math
import torch

TABLE_A4 = [(4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),
            (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012)]


def newton_schulz(x, steps, dtype):
    X = x.to(dtype)
    transposed = X.shape[0] > X.shape[1]
    if transposed:
        X = X.T
    for k in range(steps):
        a, b, c = TABLE_A4[min(k, 4)]
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if transposed:
        X = X.T
    return X.float()


def tans_step(W, G, M, V, P, lr=1e-3, b1=0.9, b2=0.999, eps=1e-5, wd=0.0, gamma=0.5, ns_steps=5,
              ns_dtype=torch.float32):
    Mf = M.float()
    Gm = torch.where(M, G, torch.zeros_like(G))
    V.mul_(b2).add_(Gm * Gm, alpha=1 - b2)
    Gh = Gm / (V.sqrt() + eps)
    P.mul_(b1).add_(Gh, alpha=1 - b1)
    Ub = Mf * ((1 - b1) * Gh + b1 * P)
    X0 = Ub / (Ub.norm() + 1e-7)
    O = newton_schulz(X0, ns_steps, ns_dtype)
    cnt = Mf.sum()
    Om = Mf * O
    s = (Ub.square().sum() / cnt).sqrt() / ((Om.square().sum() / cnt).sqrt() + eps)
    U = Ub + gamma * (s * Om - Ub)
    eta = lr * math.sqrt(W.shape[0] / W.shape[1])
    W.copy_(torch.where(M, (1 - lr * wd) * W - eta * U, W))


def main():
    dev = torch.device("cuda")
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
    for R, C in [(4096, 4096), (11008, 4096)]:
        gen = torch.Generator(device=dev).manual_seed(0)
        W = torch.rand(R, C, device=dev, generator=gen) * 2 - 1
        G = torch.rand(R, C, device=dev, generator=gen) * 2 - 1
        M = torch.rand(R, C, device=dev, generator=gen) < 0.5
        for prec in ["native", "tf32", "bf16"]:
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            dtype = torch.bfloat16 if prec == "bf16" else torch.float32
            V = torch.zeros_like(W)
            P = torch.zeros_like(W)
            for _ in range(3):
                tans_step(W, G, M, V, P, ns_dtype=dtype)
            torch.cuda.synchronize()
            times = []
            for _ in range(10):
                a = torch.cuda.Event(enable_timing=True)
                b = torch.cuda.Event(enable_timing=True)
                a.record()
                tans_step(W, G, M, V, P, ns_dtype=dtype)
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            times.sort()
            ms = times[len(times) // 2]
            print(f"torch tans step {R}x{C} NS {prec:6s} {ms:9.3f} ms")
            print(f"RESULT torch_tans_step_{R}x{C}_{prec}_ms {ms:.6g}")
    torch.backends.cuda.matmul.allow_tf32 = False


if __name__ == "__main__":
    main()
