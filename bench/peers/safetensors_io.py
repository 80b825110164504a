# Minimal safetensors reader/writer for the PyTorch peer (the `safetensors`
# package is not in Debian): 8-byte little-endian header length, a JSON
# header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
import json
import struct

import torch

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32}


def read_safetensors(path):
    """All tensors of a file as a {name: torch.Tensor} dict (copies, so the file can go)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = _DTYPES[meta["dtype"]]
        start, end = meta["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        t = torch.frombuffer(buf, dtype=dt) if len(buf) else torch.empty(0, dtype=dt)
        out[name] = t.reshape(meta["shape"]).clone()
    return out
