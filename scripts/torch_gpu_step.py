#!/usr/bin/env python3
"""PyTorch's MoCLR training step on one device, timed: the reference beside `dnc bench train`.

The step is `anchors/torch_ref.py`'s (CIFAR ResNet-18 or the tiny net, projector 512 -> 128,
both views through the online and the EMA target network in training mode, symmetric InfoNCE
with tau 0.1, SGD momentum 0.9 with weight decay on weights only, EMA update), moved to
--device, in f32 or with bf16 autocast (f32 master weights, as `dnc --precision bf16`).
Views are augmented on the CPU by torch_ref's SimCLRAugment before timing starts, so the
timed loop is the model step alone (`dnc bench train` overlaps augmentation on worker threads).

Prints one JSON object on the last line: images/s (median step), peak memory allocated by
tensors on the device.

  python scripts/torch_gpu_step.py --ref path/to/torch_ref.py --data DIR --device cuda \
      --backbone resnet18 --batch-size 512 --precision bf16
"""

import argparse
import copy
import importlib.util
import json
import time

import torch
import torch.nn.functional as F


def load_ref(path):
    spec = importlib.util.spec_from_file_location("torch_ref", path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return ref


def moclr_loss(q1, q2, k1, k2, tau):
    labels = torch.arange(q1.shape[0], device=q1.device)
    return (F.cross_entropy(q1 @ k2.t() / tau, labels)
            + F.cross_entropy(q2 @ k1.t() / tau, labels))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="path of anchors/torch_ref.py")
    ap.add_argument("--data", required=True, help="folder with a train/ split of class folders")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backbone", default="resnet18", choices=["resnet18", "tiny"])
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--pool", type=int, default=4, help="distinct pre-augmented batches")
    ap.add_argument("--threads", type=int, default=4, help="CPU threads (decode, augment)")
    args = ap.parse_args()

    ref = load_ref(args.ref)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    paths, _, _ = ref.list_split(f"{args.data}/train", args.batch_size * args.pool)
    images = ref.load_images(paths, workers=args.threads)
    augment = ref.SimCLRAugment(seed=0)
    batches = []
    for i in range(args.pool):
        x = images[i * args.batch_size:(i + 1) * args.batch_size].float().div(255.0)
        batches.append((augment(x.clone()).to(dev), augment(x.clone()).to(dev)))

    backbone, dim = ref.build_backbone(args.backbone)
    online = ref.Encoder(backbone, dim).to(dev).to(memory_format=torch.channels_last)
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(ref.param_groups(online, 5e-4), lr=0.02, momentum=0.9)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    times = []
    for step in range(args.warmup + args.steps):
        v1, v2 = batches[step % args.pool]
        start = time.perf_counter()
        x = torch.cat([v1, v2]).contiguous(memory_format=torch.channels_last)
        with autocast:
            q = F.normalize(online(x).float(), dim=1)
            with torch.no_grad():
                k = F.normalize(target(x).float(), dim=1)
        b = v1.shape[0]
        loss = moclr_loss(q[:b], q[b:], k[:b], k[b:], 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pt, po in zip(target.parameters(), online.parameters()):
                pt.mul_(0.99).add_(po.detach(), alpha=0.01)
        loss.item()  # waits for the device
        if step >= args.warmup:
            times.append(time.perf_counter() - start)

    times.sort()
    median = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    print(json.dumps({
        "impl": "torch", "torch": torch.__version__, "device": str(dev),
        "backbone": args.backbone, "batch_size": args.batch_size, "precision": args.precision,
        "median_imgs_per_s": round(args.batch_size / median, 1), "timed_steps": len(times),
        "peak_allocated_mib": None if peak is None else round(peak, 1),
        "loss": round(loss.item(), 4),
    }))


if __name__ == "__main__":
    main()
