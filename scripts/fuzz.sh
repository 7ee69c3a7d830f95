#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through swiftc -sanitize=fuzzer, with AddressSanitizer
# and LeakSanitizer) of the two readers that take bytes from outside: the wire decoder
# (Fuzz/WireFuzzer.swift over Sources/Wire) and the GGUF reader (Fuzz/GGUFFuzzer.swift over
# Sources/Model/GGUF). Each starts from its committed seed corpus (Fuzz/corpus/*), runs RUNS
# executions (default 1,000,000) and fails on a crash, a leak, or an input that takes over 10 s.
#
#   bash scripts/fuzz.sh [RUNS]      e.g. `bash scripts/fuzz.sh 20000` (CI's short pass)
#   bash scripts/fuzz.sh --seeds     rewrites Fuzz/corpus/wire and Fuzz/corpus/gguf
#
# New inputs the fuzzer finds go to .build-fuzz/corpus-*, not to the committed corpus; a crash
# leaves its input in .build-fuzz/ (replay: .build-fuzz/wire FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build-fuzz
mkdir -p "$out"
flags=(-sanitize=fuzzer,address -parse-as-library -O)
gguf_sources=(Sources/Model/GGUF/{ByteReader,GGMLType,GGUFError,GGUFFile,GGUFValue,MappedFile}.swift)

build() {  # $1: name, $2: module, rest: sources
  local name=$1 module=$2; shift 2
  swiftc "${flags[@]}" -module-name "$module" "$@" -o "$out/$name" 2> >(grep -v "ld.gold: warning" >&2)
}

if [ "${1:-}" = "--seeds" ]; then
  rm -rf Fuzz/corpus/wire Fuzz/corpus/gguf
  mkdir -p Fuzz/corpus/wire Fuzz/corpus/gguf
  swiftc -O -parse-as-library -module-name StrataWire Sources/Wire/*.swift Fuzz/WireSeeds.swift -o "$out/wire-seeds"
  "$out/wire-seeds" Fuzz/corpus/wire
  # Small GGUF files from the project's own writer: a quantized and an f32 model with a
  # tokenizer's metadata (strings and arrays), and one with a single tensor.
  swift build -c release --product strata >/dev/null
  strata=.build/release/strata
  "$strata" synth --layers 1 --dim 32 --heads 2 --kv-heads 1 --ffn 64 --vocab 32 --context 64 --type q4_0 --out Fuzz/corpus/gguf/tiny-q4_0.gguf >/dev/null
  "$strata" synth --layers 1 --dim 32 --heads 2 --kv-heads 2 --ffn 32 --vocab 16 --context 32 --type f32 --out Fuzz/corpus/gguf/tiny-f32.gguf >/dev/null
  "$strata" synth --layers 1 --dim 32 --heads 1 --kv-heads 1 --ffn 32 --vocab 8 --context 16 --type q8_0 --out Fuzz/corpus/gguf/tiny-q8_0.gguf >/dev/null
  ls -l Fuzz/corpus/wire Fuzz/corpus/gguf
  exit 0
fi

runs=${1:-1000000}
build wire StrataWire Sources/Wire/*.swift Fuzz/WireFuzzer.swift
build gguf StrataModel "${gguf_sources[@]}" Fuzz/GGUFFuzzer.swift

fuzz() {  # $1: name, $2: max input bytes
  local name=$1 max=$2 work="$out/corpus-$1"
  mkdir -p "$work"
  echo "== $name: $runs executions"
  local start=$SECONDS
  # -rss_limit_mb: an input that makes the reader allocate past 2 GiB is a failure too.
  "$out/$name" -runs="$runs" -max_len="$max" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$out/$name-" "$work" "Fuzz/corpus/$name" 2>"$out/$name.log" || {
      tail -n 40 "$out/$name.log" >&2
      echo "fuzz $name: FAILED (log: $out/$name.log)" >&2
      exit 1
    }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov: " "$out/$name.log" | tail -n 3
  echo "   $((SECONDS - start)) s"
}
fuzz wire 65536
fuzz gguf 65536
echo "fuzz: both passed $runs executions"
