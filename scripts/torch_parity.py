#!/usr/bin/env python3
"""PyTorch reference outputs for dnc-hub's parity tests, and a check of exported folders.

    python scripts/torch_parity.py generate [--out fixtures/parity]
    python scripts/torch_parity.py check-export EXPORT_DIR

`generate` builds torchvision's resnet18 (ImageNet stem), a CIFAR-stem resnet18 (3x3/1 conv1, no
max-pool) and resnet50, fills every tensor of their state_dict (BatchNorm running statistics
included, so evaluation mode is not the identity) from a seeded recipe, runs a fixed input through
each in evaluation mode (classifier replaced by the identity) and writes, per model,
`<case>.safetensors` with:

- `input`  [2, 3, H, W] f32 and `output` [2, D] f32 (the pooled features);
- `check.<name>`: the first 256 recipe values of a few tensors, to diagnose a recipe mismatch;
- metadata `state_dict`: JSON list of [name, shape, dtype] of torchvision's state_dict (with `fc`
  and `num_batches_tracked`), from which the Rust test regenerates the checkpoint.

The weights themselves are not stored (ResNet-50 is ~94 MB in f32): both sides compute them with the
recipe below, which uses only 64-bit integer arithmetic and exact scalings, so Python and Rust get
bit-identical f32 values:

    seed(name) = FNV-1a 64 of the UTF-8 name
    z_i        = splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15)     (wrapping u64)
    u_i        = (z_i >> 40) / 2**24  in [0, 1)       v_i = 2 u_i - 1 in [-1, 1)
    conv / linear weight: v * sqrt(6 / fan_in)        (He uniform; fan_in = prod(shape[1:]))
    bn weight 0.4 + 0.4 u,  bn bias 0.1 v,  running_mean 0.1 v,  running_var 0.5 + u,
    linear bias 0.01 v,  num_batches_tracked 0,  input v (name "input")
    each value computed in float64, then rounded once to float32.

`check-export` loads an exported `model.safetensors` into the matching torchvision model with
strict `load_state_dict` (fc replaced by the identity) and prints the feature shape.

Only torch, torchvision and numpy are needed (safetensors files are read and written here directly).
"""

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

MASK = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
CASES = {
    # name: (builder, cifar stem, input side)
    "resnet18_imagenet": ("resnet18", False, 64),
    "resnet18_cifar": ("resnet18", True, 32),
    "resnet50_imagenet": ("resnet50", False, 64),
}
CHECKED = ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight"]


def fnv1a(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def uniform01(name: str, n: int) -> np.ndarray:
    """u_i in [0, 1) as float64, exactly as the Rust recipe computes them."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a(name)) + i * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def recipe(name: str, shape) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    u = uniform01(name, n)
    v = 2.0 * u - 1.0
    if leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        x = v * np.sqrt(6.0 / fan_in)
    elif leaf == "weight":
        x = 0.4 + 0.4 * u
    elif leaf == "bias" and name.startswith("fc."):
        x = 0.01 * v
    elif leaf in ("bias", "running_mean"):
        x = 0.1 * v
    elif leaf == "running_var":
        x = 0.5 + u
    elif name == "input":
        x = v
    else:
        raise ValueError(f"no recipe for {name}")
    return torch.from_numpy(x.astype(np.float32).reshape(shape))


def build(arch: str, cifar: bool) -> torch.nn.Module:
    model = getattr(torchvision.models, arch)(weights=None)
    if cifar:
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    return model


DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16"}
NP = {"F32": np.float32, "I64": np.int64, "F16": np.float16, "F64": np.float64}


def save_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(chunks))


def load_safetensors(path: Path) -> dict:
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(blob[8 + n + start:8 + n + end], dtype=np.int16).copy()
            t = torch.from_numpy(raw).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(blob[8 + n + start:8 + n + end],
                                               dtype=NP[info["dtype"]]).copy())
        out[name] = t.reshape(info["shape"])
    return out


def generate(out_dir: Path) -> None:
    torch.manual_seed(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    for case, (arch, cifar, side) in CASES.items():
        model = build(arch, cifar)
        state = {k: recipe(k, tuple(v.shape)) for k, v in model.state_dict().items()}
        listing = [[k, list(v.shape), DTYPES[v.dtype]] for k, v in model.state_dict().items()]
        model.load_state_dict(state, strict=True)
        model.fc = torch.nn.Identity()
        model.eval()
        x = recipe("input", (2, 3, side, side))
        with torch.no_grad():
            y = model(x)
        tensors = {"input": x, "output": y}
        for name in CHECKED:
            tensors[f"check.{name}"] = state[name].flatten()[:256].clone()
        meta = {"state_dict": json.dumps(listing), "recipe": "splitmix64-v1",
                "torch": torch.__version__, "torchvision": torchvision.__version__}
        save_safetensors(out_dir / f"{case}.safetensors", tensors, meta)
        print(f"{case}: output {tuple(y.shape)}, |y| max {y.abs().max():.4f} "
              f"mean {y.abs().mean():.4f}", file=sys.stderr)


def check_export(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    dnc = config["dnc"]
    model = build(dnc["arch"], dnc["stem"] == "cifar")
    model.fc = torch.nn.Identity()
    state = load_safetensors(folder / "model.safetensors")
    model.load_state_dict(state, strict=True)
    side = config["pretrained_cfg"]["input_size"][-1]
    with torch.no_grad():
        y = model.eval()(torch.zeros(1, 3, side, side))
    print(f"{folder}: torchvision {dnc['arch']} ({dnc['stem']} stem) loaded strictly, "
          f"features {tuple(y.shape)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "parity")
    chk = sub.add_parser("check-export")
    chk.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.cmd == "generate":
        generate(args.out)
    else:
        check_export(args.folder)


if __name__ == "__main__":
    main()
