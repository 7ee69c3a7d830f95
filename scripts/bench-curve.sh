#!/usr/bin/env bash
# What CurveZMQ costs: the same work with encrypted links and with --insecure, in turns, in one
# run (this machine's speed drifts; compare within a run).
#
#   bash scripts/bench-curve.sh [MODEL] [ROUNDS]     (default: the 135M model, 3 rounds;
#                                                     SKIP_DECODE=1 measures streaming only)
#
# 1. Decode: `strata bench --workers 2 --json` (one stream through two local workers, 1 thread
#    each), ROUNDS times each way: one-stream decode tokens/s and the median time a batch
#    spends between stages (per hop: the pipeline's wall time less the stages' compute,
#    divided by the hops).
# 2. Weight streaming: two workers without the model and with empty caches, and a coordinator
#    that streams each its stage file (both at once): MB/s of each stream, from each worker's
#    last progress line (streams done within a second print none: use a model of GBs). Once
#    each way.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
rounds=${2:-3}
skip_decode=${SKIP_DECODE:-0}
strata=.build/release/strata
[ -x "$strata" ] || swift build -c release --product strata >/dev/null
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && echo "logs in $work" || rm -rf "$work"; }
trap cleanup EXIT

echo "model $model; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
if [ "$skip_decode" = 0 ]; then
echo "== decode, one stream through 2 workers (median of $rounds runs each)"
for r in $(seq "$rounds"); do
  for mode in curve plain; do
    flag=(); [ "$mode" = plain ] && flag=(--insecure)
    "$strata" bench --model "$model" --threads 1 --prompt 16 --generate 32 --repetitions 3 --workers 2 --json "${flag[@]}" 2>/dev/null \
      | tail -1 >"$work/decode-$mode-$r.json"
  done
done
python3 - "$work" "$rounds" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for mode in ("curve", "plain"):
    runs = [json.load(open(f"{work}/decode-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    rows[mode] = (statistics.median(x["one_stream_decode_tokens_per_second"] for x in runs),
                  statistics.median(x["hop_latency_median_us"] for x in runs))
    print(f"  {mode:6} decode {rows[mode][0]:7.1f} tokens/s   per-hop latency median {rows[mode][1]:7.0f} us")
print(f"  CurveZMQ: decode x{rows['curve'][0] / rows['plain'][0]:.3f}, per hop {rows['curve'][1] - rows['plain'][1]:+.0f} us")
EOF
fi

echo "== weight streaming to 2 workers without the model"
"$strata" keygen "$work/coordinator" >/dev/null
for i in 0 1; do "$strata" keygen "$work/w$i" >/dev/null; done
for mode in curve plain; do
  pids=(); endpoints=""
  for i in 0 1; do
    port=$((7400 + i))
    keys=(--key "$work/w$i.key" --coordinator-key "$work/coordinator.pub"); [ "$mode" = plain ] && keys=(--insecure)
    "$strata" worker --listen "tcp://127.0.0.1:$port" --threads 1 --cache-dir "$work/cache-$mode-$i" "${keys[@]}" >/dev/null 2>"$work/worker-$mode-$i.log" &
    pids+=($!)
    endpoint="tcp://127.0.0.1:$port"; [ "$mode" = curve ] && endpoint+="=$work/w$i.pub"
    endpoints+="${endpoints:+,}$endpoint"
  done
  sleep 1
  keys=(--key "$work/coordinator.key"); [ "$mode" = plain ] && keys=(--insecure)
  "$strata" coordinator --model "$model" --workers "$endpoints" "${keys[@]}" --threads 1 --prompt "x" -n 1 --stop-workers \
    --partition even >/dev/null 2>"$work/coordinator-$mode.log"
  wait "${pids[@]}" 2>/dev/null || true
  # Each worker's last progress line: the whole file, and its rate from first byte to last.
  rates=$(for i in 0 1; do grep -o "receiving layers .*" "$work/worker-$mode-$i.log" | tail -n 1 || true; done)
  echo "  $mode:"; echo "$rates" | sed 's/^/    /'
  rm -rf "$work"/cache-"$mode"-*
done
