#!/usr/bin/env bash
# The device check, run from its bundle folder (made by `cargo xtask device-check`) on a GPU
# machine with PyTorch installed and no Rust toolchain:
#   1. CUDA vs CPU parity (ResNet-18 forward/backward in f32 and bf16, MoCLR loss and gradients,
#      k-means) and a convolution backward timed with candle's conv2d against dnc's;
#   2. MoCLR training throughput of dnc and of PyTorch, same model, batch and device, in f32 and
#      bf16, with the peak device memory of each process.
# Environment: DEVICE (cuda:0; `cpu` for a dry run), MODEL (resnet18), BATCH (512), STEPS (10),
# WORKERS (8, dnc's loader threads), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")"
DEVICE=${DEVICE:-cuda:0}
MODEL=${MODEL:-resnet18}
BATCH=${BATCH:-512}
STEPS=${STEPS:-10}
WORKERS=${WORKERS:-8}
PYTHON=${PYTHON:-python3}
PARITY_BATCH=${PARITY_BATCH:-16}
CONV_BATCH=${CONV_BATCH:-256}
mkdir -p out

if [ "$DEVICE" != cpu ]; then
  # dnc links the CUDA runtime libraries PyTorch ships (nvidia/*/lib in site-packages).
  LIBS=$("$PYTHON" - <<'EOF'
import glob, os, site
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.update(os.path.dirname(p) for p in glob.glob(f"{sp}/nvidia/**/lib*.so*", recursive=True))
    dirs.update(glob.glob(f"{sp}/torch/lib"))
dirs.update(d for d in ("/usr/local/cuda/lib64",) if os.path.isdir(d))
print(":".join(sorted(dirs)))
EOF
)
  export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  TORCH_DEVICE=cuda
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
  TORCH_DEVICE=cpu
fi
echo "missing libraries:"; ldd ./dnc | grep "not found" || echo "  none"

# Peak device memory (MiB) used while "$@" runs, from nvidia-smi (n/a on the CPU).
peak_mem() {
  local log=out/mem.$$.log
  if command -v nvidia-smi >/dev/null && [ "$DEVICE" != cpu ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$log" &
    local smi=$!
    "$@"; local rc=$?
    kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
    sort -n "$log" | tail -1 >out/peak_mib
    rm -f "$log"
    return $rc
  fi
  "$@"; local rc=$?
  echo n/a >out/peak_mib
  return $rc
}

status=0
echo "== parity and convolution backward ($DEVICE vs cpu)"
timeout 150 ./dnc device-check --device "$DEVICE" --batch "$PARITY_BATCH" \
  --conv-batch "$CONV_BATCH" | tee out/parity.txt || status=1

echo "== MoCLR step throughput: $MODEL, batch $BATCH, $DEVICE"
base_mib=$(command -v nvidia-smi >/dev/null && [ "$DEVICE" != cpu ] &&
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 || echo 0)
for precision in f32 bf16; do
  peak_mem timeout 90 ./dnc bench train --model "$MODEL" --batch "$BATCH" --steps "$STEPS" \
    --warmup 3 --workers "$WORKERS" --device "$DEVICE" --precision "$precision" \
    --data data/train | tail -1 >"out/dnc-$precision.json" || status=1
  echo "$(cat out/peak_mib)" >"out/dnc-$precision.mib"
  peak_mem timeout 90 "$PYTHON" torch_gpu_step.py --ref torch_ref.py --data data \
    --device "$TORCH_DEVICE" --backbone "$MODEL" --batch-size "$BATCH" --steps "$STEPS" \
    --pool 3 --precision "$precision" | tail -1 >"out/torch-$precision.json" || status=1
  echo "$(cat out/peak_mib)" >"out/torch-$precision.mib"
done

"$PYTHON" - "$base_mib" <<'EOF' | tee out/throughput.md
import json, sys
base = sys.argv[1]
def load(name):
    try:
        with open(f"out/{name}.json") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}
def mib(name):
    v = open(f"out/{name}.mib").read().strip()
    return v if v == "n/a" else str(int(v) - int(base))
print("| precision | dnc img/s | PyTorch img/s | dnc / PyTorch | dnc peak MiB | PyTorch peak MiB |")
print("|---|---|---|---|---|---|")
for p in ("f32", "bf16"):
    ours, theirs = load(f"dnc-{p}"), load(f"torch-{p}")
    a, b = ours.get("median_imgs_per_s"), theirs.get("median_imgs_per_s")
    ratio = f"{a / b:.2f}" if a and b else "n/a"
    print(f"| {p} | {a} | {b} | {ratio} | {mib('dnc-' + p)} | {mib('torch-' + p)} |")
EOF
exit $status
