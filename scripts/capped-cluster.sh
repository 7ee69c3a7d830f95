#!/usr/bin/env bash
# A model larger than any one worker's memory, through a local cluster whose workers each run in
# their own memory cgroup (v1's controller at /sys/fs/cgroup/memory, else cgroup v2), with no copy
# of the model: the coordinator streams their layers. Needs root. Prints the time to ready (cold:
# empty stage caches, then warm), each worker's peak memory beside its cap, the coordinator's peak
# RSS, decode tokens/s through the cluster beside one process, and whether the greedy text equals
# one uncapped process's.
#
#   bash scripts/capped-cluster.sh [MODEL] [WORKERS] [CAP_MIB]
#
# Defaults: the Mistral-7B-shaped Q4_0 of scripts/bench-7b.sh (made if missing), 4 workers capped
# at 1229 MiB (1.2 GiB), default cluster settings.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/synth/mistral-7b.q4_0.gguf}
workers=${2:-4}
cap_mib=${3:-1229}
swift build -c release >/dev/null
strata=$PWD/.build/release/strata
[ -f "$model" ] || { mkdir -p "$(dirname "$model")"; "$strata" synth --shape mistral-7b --type q4_0 --seed 1 --out "$model"; }

if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then v1=1; root=/sys/fs/cgroup/memory; else v1=0; root=/sys/fs/cgroup; fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for i in $(seq 0 $((workers - 1))); do rmdir "$root/strata-capped-$$-$i" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

peak() {  # peak bytes of cgroup $1
  if [ "$v1" = 1 ]; then cat "$1/memory.max_usage_in_bytes"; else cat "$1/memory.peak" 2>/dev/null || echo 0; fi
}

# Keys, as on real hosts (docs/security.md): one pair for the coordinator, one per worker.
"$strata" keygen "$work/coordinator" >/dev/null
for i in $(seq 0 $((workers - 1))); do "$strata" keygen "$work/w$i" >/dev/null; done

start_workers() {
  pids=()
  endpoints=""
  for i in $(seq 0 $((workers - 1))); do
    cg="$root/strata-capped-$$-$i"
    mkdir -p "$cg"
    if [ "$v1" = 1 ]; then
      echo $((cap_mib << 20)) >"$cg/memory.limit_in_bytes"
      echo 0 >"$cg/memory.max_usage_in_bytes"
    else
      echo +memory >"$root/cgroup.subtree_control" 2>/dev/null || true
      echo $((cap_mib << 20)) >"$cg/memory.max"
    fi
    port=$((7300 + i))
    # The subshell moves itself into the cgroup, then becomes the worker: this shell stays out.
    (echo $BASHPID >"$cg/cgroup.procs" && exec "$strata" worker --listen "tcp://127.0.0.1:$port" --threads 2 \
      --cache-dir "$work/cache$i" --name "w$i" --key "$work/w$i.key" --coordinator-key "$work/coordinator.pub") 2>"$work/worker$i.log" &
    pids+=($!)
    endpoints+="${endpoints:+,}tcp://127.0.0.1:$port=$work/w$i.pub"
  done
  sleep 1
}

prompt="The capital of France is"
run_cluster() {  # $1: label
  local start end
  start=$(date +%s.%N)
  XDG_CACHE_HOME="$work/coordinator" /usr/bin/time -f "%M" -o "$work/coordinator.rss" \
    "$strata" coordinator --model "$model" --key "$work/coordinator.key" --workers "$endpoints" --threads 2 --prompt "$prompt" -n 16 \
    >"$work/out-$1.txt" 2>"$work/coordinator-$1.log"
  end=$(date +%s.%N)
  echo "$1: coordinator ran $(echo "$end - $start" | bc) s (start, load, 16 tokens); peak RSS $(($(cat "$work/coordinator.rss") / 1024)) MiB"
  grep -h "ready: layers" "$work"/worker*.log | tail -n "$workers" | sed 's/^/  /'
  for i in $(seq 0 $((workers - 1))); do
    echo "  worker $i: peak $(($(peak "$root/strata-capped-$$-$i") >> 20)) MiB of $cap_mib MiB"
  done
  grep -h "decode:" "$work/out-$1.txt" "$work/coordinator-$1.log" | sed "s/^/  /" || true
}

echo "model $model ($(($(stat -c %s "$model") >> 20)) MiB), $workers workers capped at $cap_mib MiB each"
start_workers
stop_workers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
run_cluster cold   # empty stage caches: layers streamed; the coordinator hashes the model once
stop_workers
start_workers
run_cluster warm   # stage files cached on the workers, digests cached on both sides
stop_workers

"$strata" generate --model "$model" --threads 2 --prompt "$prompt" -n 16 >"$work/one.txt" 2>&1 || true
echo "one process: $(grep -h "decode:" "$work/one.txt" || true)"
same() { head -n 1 "$1"; }
if [ "$(same "$work/out-warm.txt")" = "$(same "$work/one.txt")" ]; then echo "greedy text: equal to one process"; else
  echo "greedy text differs:"; head -n 2 "$work/out-warm.txt" "$work/one.txt"; fi
