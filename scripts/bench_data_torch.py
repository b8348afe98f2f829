#!/usr/bin/env python3
"""torchvision's PIL loading pipeline on a folder of images, timed like `dnc bench data --photos`.

Every image is decoded once and gives two views, each: RandomResizedCrop(size) (antialiased
bilinear), RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.2, 0.1) with probability 0.8,
ToTensor, Normalize. Batches come from a DataLoader with `--workers` processes, each with one
torch thread. Prints one JSON line: {"images": ..., "seconds": ..., "imgs_per_s": ...}.
Used by `cargo xtask bench data --vs-torch`.
"""

import argparse
import json
import os
import time

import torch
from PIL import Image
from torchvision import transforms

EXTENSIONS = (".jpg", ".jpeg", ".png")


def list_images(root, limit):
    paths = []
    for dirpath, _, files in os.walk(root):
        paths.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(EXTENSIONS))
    paths.sort()
    return paths[:limit] if limit else paths


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, paths, size):
        self.paths = paths
        self.view = transforms.Compose([
            transforms.RandomResizedCrop(size, antialias=True),
            transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
        return self.view(im), self.view(im)


def one_thread(_):
    torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder of images (any depth)")
    ap.add_argument("--images", type=int, default=2048, help="0 = every image")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(0)
    paths = list_images(args.data, args.images)
    if not paths:
        raise SystemExit(f"no images under {args.data}")
    loader = torch.utils.data.DataLoader(
        TwoViews(paths, args.size), batch_size=args.batch, shuffle=True,
        num_workers=args.workers, worker_init_fn=one_thread, persistent_workers=False,
        prefetch_factor=2 if args.workers else None)
    start = time.perf_counter()
    n = 0
    for v1, _ in loader:
        n += v1.shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"images": n, "seconds": round(seconds, 3),
                      "imgs_per_s": round(n / seconds, 2), "workers": args.workers,
                      "size": args.size, "pillow": Image.__version__}))


if __name__ == "__main__":
    main()
