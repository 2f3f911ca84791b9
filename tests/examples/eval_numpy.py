#!/usr/bin/env python3
# Evaluates models exported by examples/fashion_mnist with numpy alone (no sparsenm) and checks
# that (1) the test accuracy equals the C++ run's (recorded in manifest.json) to 0.1 point,
# (2) every mask is legal for its N:M and layout and the weight is zero off the mask.
# Exit 77 (ctest SKIP_RETURN_CODE) when numpy is missing.
#   eval_numpy.py OUT_DIR DATA_DIR [METHOD ...]
import gzip
import json
import os
import sys

try:
    import numpy as np
except ImportError:
    print("numpy not available: skipping")
    sys.exit(77)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def evaluate(model_dir, images):
    # The README's snippet: the manifest says which .npy holds what and how a layer computes.
    man = json.load(open(os.path.join(model_dir, "manifest.json")))
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    for layer in man["layers"]:
        t = {k: np.load(os.path.join(model_dir, v)) for k, v in layer["tensors"].items()}
        y = x @ t["weight"].T + t["bias"]
        if "lora_A" in t:
            lo = layer["lora"]
            h = x @ t["gate_W1"].T + t["gate_b1"]
            g = (h / (1 + np.exp(-h))) @ t["gate_W2"].T + t["gate_b2"]
            y = y + np.float32(lo["alpha"] / lo["rank"]) * (
                (1 + np.float32(lo["gamma"]) * np.tanh(g)) * (x @ t["lora_A"].T)) @ t["lora_B"].T
        x = np.maximum(y, 0) if layer["activation"] == "relu" else y
    return man, x.argmax(axis=1)


def check_masks(model_dir, man):
    n, m, layout = man["n"], man["m"], man["layout"]
    for layer in man["layers"]:
        if "mask" not in layer["tensors"]:
            continue
        mask = np.load(os.path.join(model_dir, layer["tensors"]["mask"]))
        w = np.load(os.path.join(model_dir, layer["tensors"]["weight"]))
        name = layer["name"]
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}, name + ": mask not 0/1"
        assert mask.shape == w.shape, name + ": mask shape"
        assert not np.any(w[mask == 0]), name + ": nonzero weight off the mask"
        r, c = mask.shape
        if layout == "rowwise":
            ok = np.all(mask.reshape(r, c // m, m).sum(axis=2) == n)
        else:
            tiles = mask.reshape(r // m, m, c // m, m)
            ok = np.all(tiles.sum(axis=3) == n) and np.all(tiles.sum(axis=1) == n)
        assert ok, "%s: mask is not legal %d:%d %s" % (name, n, m, layout)


def main():
    out_dir, data_dir = sys.argv[1], sys.argv[2]
    methods = sys.argv[3:] or sorted(
        d for d in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, d, "manifest.json")))
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    failures = 0
    for method in methods:
        model_dir = os.path.join(out_dir, method)
        man = json.load(open(os.path.join(model_dir, "manifest.json")))
        count = man.get("test_samples", len(labels))
        man, pred = evaluate(model_dir, images[:count])
        acc = 100.0 * float(np.mean(pred == labels[:count]))
        cpp = float(man["test_accuracy"])
        check_masks(model_dir, man)
        status = "ok" if abs(acc - cpp) <= 0.1 else "MISMATCH"
        failures += status != "ok"
        print("%-12s numpy %.2f%%  C++ %.2f%%  (%d test images)  masks legal  %s" %
              (method, acc, cpp, count, status))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
