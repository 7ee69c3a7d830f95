#!/usr/bin/env bash
# Strata beside llama.cpp on a 7B-shaped model, runs interleaved in one go: decode, prefill and
# 8 sequences decoded together, for Q4_0 and llama-quantize's Q4_K_M of it, plus the default model.
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bash scripts/bench-7b.sh [ROUNDS] [THREADS]
#
# Then one stream through 2 workers beside llama.cpp's RPC backend with 2 servers (Q4_0).
# Needs jq. LLAMA_BIN holds llama-bench, llama-batched-bench, llama-quantize and ggml-rpc-server (built from the llama.cpp in
# PyPI's llama-cpp-python sdist with -DGGML_NATIVE=ON, as README.md says). The models are made once
# with `strata synth --shape mistral-7b` (seed 1) and cached in models/synth/. Prints each run's
# figures, then per test the median of the rounds and the ratio Strata / llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-2}
: "${LLAMA_BIN:?set LLAMA_BIN to the folder with llama-bench, llama-batched-bench and llama-quantize}"
swift build -c release >/dev/null
strata=.build/release/strata
mkdir -p models/synth
q4_0=models/synth/mistral-7b.q4_0.gguf
q4_k_m=models/synth/mistral-7b.q4_k_m.gguf
[ -f "$q4_0" ] || "$strata" synth --shape mistral-7b --type q4_0 --seed 1 --out "$q4_0"
[ -f "$q4_k_m" ] || "$LLAMA_BIN/llama-quantize" --allow-requantize "$q4_0" "$q4_k_m" Q4_K_M "$threads" >/dev/null 2>&1
small=models/SmolLM2-135M-Instruct.Q4_1.gguf

results=$(mktemp)
trap 'rm -f "$results"' EXIT
record() { echo "$1 $2 $3" >>"$results"; echo "  $1 $2: $3"; }

for round in $(seq 1 "$rounds"); do
  echo "round $round"
  for model in "$q4_0" "$q4_k_m" "$small"; do
    name=$(basename "$model" .gguf)
    if [ "$model" = "$small" ]; then pp=128; tg=64; reps=5; else pp=64; tg=16; reps=2; fi
    s=$("$strata" bench --model "$model" --threads "$threads" --prompt "$pp" --generate "$tg" \
          --repetitions "$reps" --parallel 8 --json)
    record "$name" strata_pp "$(jq .prefill_tokens_per_second <<<"$s")"
    record "$name" strata_tg "$(jq .decode_tokens_per_second <<<"$s")"
    record "$name" strata_tg_x8 "$(jq .parallel_decode_tokens_per_second <<<"$s")"
    record "$name" strata_decode_gbs "$(jq .decode_weight_gigabytes_per_second <<<"$s")"
    record "$name" read_gbs "$(jq .weight_read_gigabytes_per_second <<<"$s")"
    l=$("$LLAMA_BIN/llama-bench" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -o jsonl 2>/dev/null)
    record "$name" llama_pp "$(jq -s "map(select(.n_prompt == $pp)) | .[0].avg_ts" <<<"$l")"
    record "$name" llama_tg "$(jq -s "map(select(.n_gen == $tg)) | .[0].avg_ts" <<<"$l")"
    b=$("$LLAMA_BIN/llama-batched-bench" -m "$model" -t "$threads" -c $(((pp + tg) * 8 + 64)) \
          -npp "$pp" -ntg "$tg" -npl 8 --output-format jsonl 2>/dev/null | grep '^{')
    record "$name" llama_tg_x8 "$(jq -s '.[0].speed_tg' <<<"$b")"
  done
  # One stream through two workers (processes on this machine) beside llama.cpp's RPC backend with
  # two servers, on the Q4_0 file.
  name=$(basename "$q4_0" .gguf)
  c=$("$strata" bench --model "$q4_0" --threads "$threads" --prompt 16 --generate 16 --repetitions 3 --workers 2 --json)
  record "$name" strata_2w "$(jq .one_stream_decode_tokens_per_second <<<"$c")"
  record "$name" strata_2w_vs_1p "$(jq .ratio_to_one_process <<<"$c")"
  "$LLAMA_BIN/ggml-rpc-server" -t "$threads" -p 50061 >/dev/null 2>&1 & rpc1=$!
  "$LLAMA_BIN/ggml-rpc-server" -t "$threads" -p 50062 >/dev/null 2>&1 & rpc2=$!
  sleep 2
  r=$("$LLAMA_BIN/llama-bench" -m "$q4_0" --rpc 127.0.0.1:50061,127.0.0.1:50062 -ngl 99 -t "$threads" -p 0 -n 16 -r 3 \
        -o jsonl 2>/dev/null || true)
  kill "$rpc1" "$rpc2" 2>/dev/null || true
  wait "$rpc1" "$rpc2" 2>/dev/null || true
  record "$name" llama_rpc_2 "$(jq -s 'map(select(.n_gen == 16)) | .[0].avg_ts' <<<"$r")"
done

echo
echo "medians of $rounds rounds, $threads threads ($("$strata" bench --model "$small" --prompt 1 --generate 1 --repetitions 1 --json | jq -r .isa))"
python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    model, test, value = line.split()
    if value != "null": runs[(model, test)].append(float(value))
models = sorted({m for m, _ in runs})
for m in models:
    med = {t: statistics.median(v) for (mm, t), v in runs.items() if mm == m}
    print(m)
    for label, s, l in [("prefill", "strata_pp", "llama_pp"), ("decode", "strata_tg", "llama_tg"),
                        ("8 sequences, in all", "strata_tg_x8", "llama_tg_x8")]:
        if s in med and l in med:
            print(f"  {label:22s} strata {med[s]:8.2f}  llama.cpp {med[l]:8.2f}  ratio {med[s] / med[l]:.2f}")
    if "strata_2w" in med and "llama_rpc_2" in med:
        print(f"  one stream, 2 workers  strata {med['strata_2w']:8.2f}  llama.cpp RPC {med['llama_rpc_2']:8.2f}  "
              f"ratio {med['strata_2w'] / med['llama_rpc_2']:.2f}; {med['strata_2w_vs_1p']:.2f}x Strata in one process")
    if "strata_decode_gbs" in med:
        print(f"  decode reads weights at {med['strata_decode_gbs']:.1f} GB/s; a plain read of them: "
              f"{med['read_gbs']:.1f} GB/s ({100 * med['strata_decode_gbs'] / med['read_gbs']:.0f}%)")
PY
