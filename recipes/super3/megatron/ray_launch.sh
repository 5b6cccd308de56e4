#!/usr/bin/env bash
# Start a Ray cluster over the job's nodes and run a command on the head (ray.sub-style).
#
# Run once per node (srun --ntasks-per-node=1). Node 0 starts the Ray head, waits for every node to
# join, runs "$@" with RAY_ADDRESS set, stops Ray and exits with the command's status. Other nodes
# join as workers and leave when the head goes away. Without Slurm it is a one-node cluster.
#
# Environment: RAY_GPUS_PER_NODE (default 0), RAY_PORT (6379), RAY_HEAD_ADDR (default: first node of
# SLURM_JOB_NODELIST, else 127.0.0.1), RAY_WAIT_TIMEOUT seconds for nodes to join (600),
# RAY_TEMP_DIR (Ray's default), PYTHON (python3), RAY_STOP_CMD (how to stop Ray here: "ray stop --force";
# tests on a shared machine replace it so other users' Ray processes are left alone).
set -uo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: ray_launch.sh COMMAND [ARGS...]" >&2
  exit 2
fi

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') INFO [ray_launch node ${NODE_ID}] $*" >&2; }

NODE_ID="${SLURM_NODEID:-${SLURM_PROCID:-0}}"
NUM_NODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
GPUS="${RAY_GPUS_PER_NODE:-0}"
PORT="${RAY_PORT:-6379}"
TIMEOUT="${RAY_WAIT_TIMEOUT:-600}"
PY="${PYTHON:-python3}"
if [ -n "${RAY_HEAD_ADDR:-}" ]; then
  HEAD="${RAY_HEAD_ADDR}"
elif [ -n "${SLURM_JOB_NODELIST:-}" ] && command -v scontrol >/dev/null 2>&1; then
  HEAD="$(scontrol show hostnames "${SLURM_JOB_NODELIST}" | head -n 1)"
else
  HEAD="127.0.0.1"
fi
ADDRESS="${HEAD}:${PORT}"
STOP_CMD="${RAY_STOP_CMD:-ray stop --force}"
TEMP_ARGS=()
if [ -n "${RAY_TEMP_DIR:-}" ]; then TEMP_ARGS=(--temp-dir "${RAY_TEMP_DIR}"); fi

alive_nodes() {
  "$PY" - "$ADDRESS" <<'PYEOF' 2>/dev/null
import sys
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n.get("Alive")))
PYEOF
}

if [ "${NODE_ID}" = "0" ]; then
  log "starting Ray head at ${ADDRESS} (${GPUS} GPUs, ${NUM_NODES} node(s))"
  ray start --head --node-ip-address="${HEAD}" --port="${PORT}" --num-gpus="${GPUS}" \
    --include-dashboard=false --disable-usage-stats "${TEMP_ARGS[@]}" >&2 || {
    log "ray start failed"
    ${STOP_CMD} >/dev/null 2>&1
    exit 1
  }
  trap '${STOP_CMD} >/dev/null 2>&1' EXIT
  deadline=$(( $(date +%s) + TIMEOUT ))
  while :; do
    n="$(alive_nodes || echo 0)"
    [ "${n:-0}" -ge "${NUM_NODES}" ] && break
    if [ "$(date +%s)" -ge "${deadline}" ]; then
      log "only ${n:-0} of ${NUM_NODES} nodes joined within ${TIMEOUT}s"
      exit 1
    fi
    sleep 5
  done
  log "all ${NUM_NODES} node(s) joined; running: $*"
  export RAY_ADDRESS="${ADDRESS}"
  "$@"
  status=$?
  log "command exited with ${status}; stopping Ray"
  exit "${status}"
else
  deadline=$(( $(date +%s) + TIMEOUT ))
  until ray start --address="${ADDRESS}" --num-gpus="${GPUS}" --disable-usage-stats >&2; do
    if [ "$(date +%s)" -ge "${deadline}" ]; then log "could not join ${ADDRESS}"; exit 1; fi
    sleep 5
  done
  log "joined ${ADDRESS}; waiting for the head to finish"
  while ray health-check --address="${ADDRESS}" >/dev/null 2>&1; do sleep 15; done
  ${STOP_CMD} >/dev/null 2>&1
  log "head is gone; worker exits"
  exit 0
fi
