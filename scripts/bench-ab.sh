#!/usr/bin/env bash
# Two builds of strata side by side, in turns, on one model: `strata bench --workers 2 --json`
# with each binary, ROUNDS times, alternating so that both see the same minutes of this
# machine. Prints one summary line per run (decode through the cluster ÷ one process, aggregate
# tokens/s at 1, 4 and 8 streams, the hop latency median).
#
#   bash scripts/bench-ab.sh OLD_STRATA NEW_STRATA MODEL [ROUNDS] [bench flags…]
#   e.g. bash scripts/bench-ab.sh ../before/.build/release/strata .build/release/strata \
#            models/synth/mistral-7b.q4_0.gguf 2 --repetitions 2 --generate 16 --prompt 16
set -euo pipefail
old=$1; new=$2; model=$3; rounds=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
for round in $(seq 1 "$rounds"); do
    for side in old new; do
        binary=$old; [ "$side" = new ] && binary=$new
        "$binary" bench --model "$model" --workers 2 --json "$@" 2>/dev/null | tail -1 | python3 -c "
import json, sys
d = json.load(sys.stdin)
streams = {c['streams']: round(c['aggregate_tokens_per_second'], 2) for c in d['concurrent']}
print('$side round $round: ratio %.3f, one process %.2f tok/s, streams %s, hop median %.0f us'
      % (d['ratio_to_one_process'], d['one_process_decode_tokens_per_second'], streams, d['hop_latency_median_us']))"
    done
done
