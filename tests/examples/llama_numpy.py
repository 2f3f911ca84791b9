#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Rebuilds every exported tiny_llama model in numpy from its manifest.json alone (tensor files,
shapes, RoPE base and pairing, RMSNorm eps, SiLU, CoMoLoRA formula) and checks that it gives the
perplexity the C++ example reported on the same validation windows (val_sample.npy), that the
.npy files equal the safetensors tensors, and that every sparse weight is zero off its legal mask.

usage: llama_numpy.py OUT_DIR METHOD...      (exit 77 = skipped: no numpy)
"""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    print("numpy missing: skipping")
    sys.exit(77)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "I32": np.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out


def forward(t, arch, lora, tokens):
    d, nh, hd, ctx = arch["d_model"], arch["heads"], arch["head_dim"], arch["context"]
    eps, base = arch["norm_eps"], arch["rope_base"]
    half = hd // 2
    pos = np.arange(tokens.shape[1])[:, None]
    ang = pos * base ** (-2.0 * np.arange(half) / hd)
    cos, sin = np.cos(ang), np.sin(ang)

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x):  # (B, T, heads, hd)
        a, b = x[..., :half], x[..., half:]
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    def silu(z):
        return z / (1 + np.exp(-z))

    def proj(name, x):
        y = x @ t[name + ".weight"].T
        if lora is not None:
            g = silu(x @ t[name + ".gate_W1"].T + t[name + ".gate_b1"]) @ t[name + ".gate_W2"].T
            g = 1 + lora["gamma"] * np.tanh(g + t[name + ".gate_b2"])
            y = y + (lora["alpha"] / lora["rank"]) * (g * (x @ t[name + ".lora_A"].T)) @ t[
                name + ".lora_B"].T
        return y

    B, T = tokens.shape
    h = t["tok_embeddings.weight"][tokens].astype(np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(arch["layers"]):
        p = "layers.%d." % i
        x = norm(h, t[p + "attention_norm.weight"])
        q = rope(proj(p + "attention.wq", x).reshape(B, T, nh, hd))
        k = rope(proj(p + "attention.wk", x).reshape(B, T, nh, hd))
        v = proj(p + "attention.wv", x).reshape(B, T, nh, hd)
        s = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx_ = np.einsum("bhij,bjhd->bihd", s, v).reshape(B, T, d)
        h = h + proj(p + "attention.wo", ctx_)
        x = norm(h, t[p + "ffn_norm.weight"])
        h = h + proj(p + "feed_forward.w2",
                     silu(proj(p + "feed_forward.w1", x)) * proj(p + "feed_forward.w3", x))
    return norm(h, t["norm.weight"]) @ t["output.weight"].T


def main():
    out, methods = sys.argv[1], sys.argv[2:]
    sample = np.load(os.path.join(out, "val_sample.npy")).astype(np.int64)
    failures = 0
    for m in methods:
        for seed_dir in sorted(os.listdir(os.path.join(out, m))):
            d = os.path.join(out, m, seed_dir)
            man = json.load(open(os.path.join(d, "manifest.json")))
            arch = man["architecture"]
            st = load_safetensors(os.path.join(d, man["safetensors"]))
            t = {}
            for e in man["tensors"]:
                a = np.load(os.path.join(d, e["file"]))
                assert list(a.shape) == e["shape"], (e["name"], a.shape, e["shape"])
                assert np.array_equal(a, st[e["name"]]), e["name"] + ": npy != safetensors"
                t[e["name"]] = a.astype(np.float64) if a.dtype != np.uint8 else a
            for name, a in t.items():
                if name.endswith(".mask"):
                    w = t[name[:-5] + ".weight"]
                    assert not np.any(w[a == 0]), name + ": weight nonzero off the mask"
                    g = a.reshape(a.shape[0], -1, man["m"]).sum(-1)
                    assert np.all(g == man["n"]), name + ": mask is not N:M per row group"
            logits = forward(t, arch, arch["lora"], sample[:, :-1])
            lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
            ce = lse - np.take_along_axis(logits, sample[:, 1:, None], -1)[..., 0]
            ppl = float(np.exp(ce.mean()))
            ref = man["val_sample_perplexity"]
            ok = abs(ppl - ref) <= 1e-3 * ref
            failures += not ok
            print("%-18s %s: numpy ppl %.5f, C++ %.5f %s" % (m, seed_dir, ppl, ref,
                                                            "ok" if ok else "MISMATCH"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
