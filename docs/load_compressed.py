#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Read a sparsenm compressed N:M export (.safetensors, docs/file-formats.md) with numpy alone.

    python3 docs/load_compressed.py model.safetensors            # list the layers
    python3 docs/load_compressed.py model.safetensors REF_DIR    # and compare with REF_DIR/NAME.npy

Every compressed layer NAME is rebuilt as a dense (out, in) array from NAME.values and
NAME.indices; a 2:4 layer's NVIDIA metadata (NAME.nv_meta) is decoded and checked against the
indices. With REF_DIR, each rebuilt weight must equal REF_DIR/NAME.npy bit for bit (exit 1 if
not). ctest runs this on the export of examples/recipes/chts24.cpp (test recipe_export_numpy).
"""
import json
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "U8": "u1", "I32": "<i4", "I64": "<i8"}


def read_safetensors(path):
    """Returns ({name: array}, {metadata key: value})."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], DTYPES[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


def dense_weight(tensors, meta, name):
    """The dense (out, in) weight of compressed layer `name`: zeros off its N:M mask."""
    n, m = map(int, meta[name + ".nm"].split(":"))
    rows, cols = map(int, meta[name + ".shape"].split(","))
    values, indices = tensors[name + ".values"], tensors[name + ".indices"]
    group = np.arange(values.shape[1]) // n              # slot j belongs to group j // n
    columns = group * m + indices.astype(np.int64)       # dense column of every kept value
    w = np.zeros((rows, cols), values.dtype)
    np.put_along_axis(w, columns, values, axis=1)
    return w


def nv_indices(tensors, name):
    """In-group indices decoded from NVIDIA 2:4 metadata (uint16 words, nibble idx0 | idx1 << 2)."""
    words = tensors[name + ".nv_meta"].view("<u2").astype(np.int64)   # (out, in / 16)
    nibbles = (words[:, :, None] >> (4 * np.arange(4))) & 0xF          # (out, in / 16, 4 groups)
    pairs = np.stack([nibbles & 3, nibbles >> 2], axis=-1)              # (out, in / 16, 4, 2)
    return pairs.reshape(words.shape[0], -1)


def main():
    tensors, meta = read_safetensors(sys.argv[1])
    names = [s for s in meta.get("sparsenm.compressed", "").split(",") if s]
    ok = bool(names)
    for name in names:
        w = dense_weight(tensors, meta, name)
        line = "%s: %s %s, %d of %d nonzero" % (name, meta[name + ".nm"], w.shape,
                                                np.count_nonzero(w), w.size)
        if name + ".nv_meta" in tensors:
            same = np.array_equal(nv_indices(tensors, name), tensors[name + ".indices"])
            ok &= same
            line += ", NVIDIA metadata " + ("matches" if same else "DIFFERS from") + " the indices"
        if len(sys.argv) > 2:
            ref = np.load("%s/%s.npy" % (sys.argv[2], name))
            same = ref.dtype == w.dtype and np.array_equal(ref.view(np.uint8), w.view(np.uint8))
            ok &= same
            line += ", dense weight " + ("identical to" if same else "DIFFERS from") + " the reference"
        print(line)
    if not names:
        print("no compressed layers in " + sys.argv[1])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
