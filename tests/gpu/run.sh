#!/usr/bin/env bash
# On the lent GPU machine, from the repository root, with .whl/ carried (tests/gpu/fetch_wheels.sh):
#   bash tests/gpu/run.sh [--sections abcd] [--device cuda]
# installs the carried wheels into /tmp/site (no index, no dependency resolution: the image provides
# torch and friends), then runs tests/gpu/check_megatron_bridge.py. Everything printed also goes to
# $OUT/gpu_check.log when $OUT is set. Exit status: the check's (1 when a section failed).
set -uo pipefail
cd "$(dirname "$0")/../.."

LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG="$OUT/gpu_check.log"; fi

{
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "error: no wheels in .whl/ (run tests/gpu/fetch_wheels.sh where PyPI is reachable, then carry .whl)"
    exit 2
  fi
  echo "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into /tmp/site"
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH="/tmp/site:$PWD/src:$PWD/recipes:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export GPU_CHECK_LOG=""  # this wrapper already keeps the whole output
  export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled
  timeout 225 python3 -W ignore::DeprecationWarning -W ignore::FutureWarning -W ignore::UserWarning \
    tests/gpu/check_megatron_bridge.py "$@"
  status=$?
  [ "$status" -eq 124 ] && echo "error: the check ran past its 225 s limit"
  exit "$status"
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
