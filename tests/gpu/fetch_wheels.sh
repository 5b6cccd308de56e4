#!/usr/bin/env bash
# Download (here, with PyPI access) the wheels tests/gpu/run.sh installs on the GPU check machine,
# which has torch/transformers/triton/einops/peft/accelerate/safetensors but no internet.
#
# Into .whl/ (git-ignored, <= 50 MiB; the lead carries it to the machine): the pinned Megatron-Bridge
# and Megatron-Core, and what their recipe/config import chain needs that the GPU image lacks (found by
# importing the recipe module in a Python 3.12 environment holding only the image's packages).
# Left out on purpose (too big, or GPU builds): transformer-engine, mamba-ssm, causal-conv1d, scipy,
# datasets/pyarrow, megatron-energon. check_megatron_bridge.py stands in for the ones imported only on
# paths the config check never runs, and says so in its output.
#
# Versions: MB_VERSION / MCORE_VERSION from the environment, else the megatron-bridge / megatron-core
# pins (src/nemotron/upstream/pins.py) of the default pretrain container, else the defaults below.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEFAULT_MB=0.4.2     # megatron-bridge on PyPI 2026-05-28
DEFAULT_MCORE=0.17.1 # megatron-core on PyPI 2026-05-28

pinned() { # the version pinned for a library in the container of configs/super3/pretrain/default.yaml
  PYTHONPATH=src python3 - "$1" <<'EOF' 2>/dev/null || true
import sys

import yaml

from nemotron.upstream.pins import CONTAINERS

image = yaml.safe_load(open("configs/super3/pretrain/default.yaml"))["resources"]["container"]
container = CONTAINERS.get(image)
pin = next((p for p in container.pins if p.library == sys.argv[1]), None) if container else None
print(pin.version if pin else "")
EOF
}

MB="${MB_VERSION:-$(pinned megatron-bridge)}"
MCORE="${MCORE_VERSION:-$(pinned megatron-core)}"
[ -n "$MB" ] || { MB=$DEFAULT_MB; echo "no megatron-bridge pin in nemotron.upstream.pins: using $MB"; }
[ -n "$MCORE" ] || { MCORE=$DEFAULT_MCORE; echo "no megatron-core pin in nemotron.upstream.pins: using $MCORE"; }

WHEELS=(
  "megatron-bridge==$MB"
  "megatron-core==$MCORE"
  nvidia-modelopt==0.47.0        # megatron.bridge.models.conversion.auto_bridge imports modelopt.torch
  pulp==3.3.2 ninja nvidia-ml-py # modelopt.torch imports them (pulp 4 needs orloge; modelopt wants <4)
  omegaconf==2.4.0               # megatron.bridge.training.config / recipes
  tensorboard tensorboard-data-server protobuf absl-py  # megatron.bridge.training.state: torch.utils.tensorboard
  pillow                         # megatron.bridge.recipes.common -> data.vlm_datasets.collate
  requests urllib3 charset-normalizer certifi  # modelopt.torch.utils.dataset_utils
  pydantic pydantic-core annotated-types typing-inspection  # nemotron.config (our translation's input)
)

rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --dest .whl \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 --platform any \
  "${WHEELS[@]}"

bytes=$(du -cb .whl/*.whl | tail -1 | cut -f1)
ls -1 .whl
echo "megatron-bridge $MB, megatron-core $MCORE: $(ls .whl/*.whl | wc -l) wheels, $((bytes / 1024 / 1024)) MiB in .whl/"
if [ "$bytes" -gt $((50 * 1024 * 1024)) ]; then
  echo "error: .whl/ is over the 50 MiB that can be carried to the GPU machine" >&2
  exit 2
fi
