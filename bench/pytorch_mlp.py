#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The reference point of bench_train's dense MLP step: the same model in PyTorch on the CPU
# (Debian's python3-torch), 784 -> 1024 -> 1024 -> 10, ReLU, cross-entropy, Adam, fixed synthetic
# batch; prints samples/s per batch size. Dense and STE 1:4 (a magnitude 1:4 mask of each hidden
# weight recomputed every step, straight-through) as in the example's ste method.
#   python3 bench/pytorch_mlp.py [threads]      (not part of the test suite)
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)


def mask14(w):
    """Row-wise 1:4 magnitude mask: the largest |w| of every group of 4 inputs."""
    g = w.abs().reshape(w.shape[0], -1, 4)
    return torch.zeros_like(g).scatter_(2, g.argmax(2, keepdim=True), 1.0).reshape(w.shape)


class Ste(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return w * mask14(w)

    @staticmethod
    def backward(ctx, g):
        return g


def run(batch, ste, seconds=3.0):
    model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 784)
    y = torch.arange(batch) % 10
    hidden = [model[0], model[2]]

    def step():
        opt.zero_grad()
        h = x
        for i, layer in enumerate(model):
            if ste and layer in hidden:
                h = torch.nn.functional.linear(h, Ste.apply(layer.weight), layer.bias)
            else:
                h = layer(h)
        torch.nn.functional.cross_entropy(h, y).backward()
        opt.step()

    for _ in range(5):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0)


print(f"PyTorch {torch.__version__}, {threads} thread(s)")
for batch in (32, 128, 512):
    print(f"batch {batch:4d}: dense {run(batch, False):8.0f} samples/s, "
          f"STE 1:4 {run(batch, True):8.0f} samples/s")
