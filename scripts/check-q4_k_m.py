#!/usr/bin/env python3
"""Greedy output of Strata on llama-quantize's Q4_K_M of the default model (mostly Q5_0: SmolLM2's
width 576 is not a multiple of 256) against llama.cpp on the F32 dequantization of that same file.

    LLAMA_BIN=/path/to/llama.cpp/build/bin python3 scripts/check-q4_k_m.py

Makes both files with llama-quantize in models/q4_k_m/ (once), then for each public prompt of
Tests/References/greedy_f32.json compares: Strata's fast path on the Q4_K_M file, Strata's f32 path
on the F32 file (token ids), and llama.cpp's greedy text on the F32 file. Exits 1 on a difference.
"""
import json, os, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
llama = os.environ.get("LLAMA_BIN") or sys.exit("set LLAMA_BIN to llama.cpp's build/bin")
strata = ".build/release/strata"
src = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
q4km, f32 = "models/q4_k_m/SmolLM2-135M.Q4_K_M.gguf", "models/q4_k_m/SmolLM2-135M.Q4_K_M-as-F32.gguf"
os.makedirs("models/q4_k_m", exist_ok=True)
for inp, out, kind in [(src, q4km, "Q4_K_M"), (q4km, f32, "F32")]:
    if not os.path.exists(out):
        subprocess.run([f"{llama}/llama-quantize", "--allow-requantize", inp, out, kind], check=True, capture_output=True)

def generate(model, precision, prompt):
    out = subprocess.run([strata, "generate", "--model", model, "--prompt", prompt, "-n", "32", "--precision", precision,
                          "--json", "--threads", "2"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)

failures = 0
for p in json.load(open("Tests/References/greedy_f32.json"))["prompts"]:
    fast, exact = generate(q4km, "fast", p["prompt"]), generate(f32, "f32", p["prompt"])
    text = subprocess.run([f"{llama}/llama-completion", "-m", f32, "-p", p["prompt"], "-n", str(len(exact["generated_ids"])),
                           "--temp", "0", "-no-cnv", "--no-display-prompt", "-t", "2", "--simple-io"],
                          capture_output=True, text=True).stdout.replace(" [end of text]", "").rstrip("\n")
    ok_ids, ok_text = fast["generated_ids"] == exact["generated_ids"], text == exact["text"]
    failures += not (ok_ids and ok_text)
    print(f"{p['name']:15s} {len(fast['generated_ids']):2d} tokens  Q4_K_M fast ids == F32 ids: {ok_ids}  "
          f"llama.cpp F32 text == Strata F32 text: {ok_text}")
sys.exit(1 if failures else 0)
