#!/usr/bin/env bash
# The GPU checks of the speed issue, as one script for a lent H100/H200 (about 5 minutes):
#   bash scripts/gpu_check.sh            (writes $OUT/gpu_bench.txt when OUT is set)
# 1. installs the project into a fresh venv (torch from the machine's index),
# 2. checks the fast path (bf16 + channels-last + compile) against fp32 on one batch,
# 3. runs the benchmark table at batch 512: model step (Lightning vs bare vs torchvision),
#    TFLOP/s and fraction of the measured bf16 matmul peak, loaders, and end to end from a
#    store of the ILSVRC sample (decoded in the workers, and by nvJPEG on the GPU),
# 4. prints the per-layer time table (python -m alexnet.bench.model --profile) on the GPU.
# The fast-path tests include the count of host reads in the training step, here on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
[ -x .venv-gpu/bin/python ] || python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q -e . 2>&1 | tail -2
PY=.venv-gpu/bin/python
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu_bench.txt"
$PY -m pytest -q tests/test_fast_path.py 2>&1 | tail -3 | tee -a "$OUT/gpu_bench.txt"
$PY - <<'PY' 2>&1 | tee -a "$OUT/gpu_bench.txt"
# fp32 versus the fast path on the GPU, same batch and weights
import copy, torch
from torch.nn import functional as F
from alexnet.training.config import node, paper_optim
from alexnet.training.module import LitAlexNet
from alexnet.callbacks import fast_path as speed
torch.manual_seed(0)
plain = LitAlexNet(node("model", "experiment=alexnet_paper", "model.dropout=0.0"), paper_optim()).cuda()
fast = copy.deepcopy(plain); speed.apply(fast, channels_last=True, compile=True)
x = torch.randn(64, 3, 227, 227, device="cuda") * 60; y = torch.randint(0, 1000, (64,), device="cuda")
def run(m, bf16):
    m.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(m(x).float(), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in m.parameters()])
l0, g0 = run(plain, False); l1, g1 = run(fast, True)
print(f"fp32 loss {l0:.5f}  fast-path loss {l1:.5f}  grad cosine {F.cosine_similarity(g0, g1, dim=0):.5f}")
PY
# The loader rows and end to end need original JPEGs: ../shared's ILSVRC sample when it is there,
# or a copy carried in the ignored data/ folder; without them, the model step only.
IMAGES=${IMAGES:-}
for d in ../shared/data/imagenet-sample shared/data/imagenet-sample data/imagenet-sample; do
  [ -z "$IMAGES" ] && [ -d "$d" ] && IMAGES=$d
done
if [ -n "$IMAGES" ]; then DATA=(--images "$IMAGES"); else DATA=(--skip-data); echo "no images: model step only" | tee -a "$OUT/gpu_bench.txt"; fi
$PY -m alexnet.bench "${DATA[@]}" --device cuda --batch 512 --steps 30 --warmup 10 2>&1 | tee -a "$OUT/gpu_bench.txt"
# 4. where the step's time goes on the GPU, layer by layer (the torch profiler's CUDA times).
$PY -m alexnet.bench.model --profile --device cuda --batch 512 --steps 10 --warmup 5 2>&1 | tee -a "$OUT/gpu_bench.txt"
