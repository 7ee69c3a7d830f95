"""Drives a Strata coordinator with the official `openai` package, as a user's program would.

    python3 openai_client.py MODE BASE_URL [ARGS]

Modes:
  reference URL REFS_JSON  completions, chats and a streamed chat must give llama.cpp's greedy
                           reference text; usage counts must match the reference token counts.
  disconnect URL           opens a long stream, checks that it holds KV cache on the workers
                           (through /metrics), then closes it after a few chunks.
  errors URL               bad requests must raise the openai package's error classes.
  auth URL KEY             a wrong key is refused, the right one works.

Prints one JSON object with what it saw; exits 1 with the reason on any mismatch.
"""
import json
import sys
import time
import urllib.request

import openai

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)


def client(base, key="none"):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def metric_values(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def reference(base, refs_path):
    c = client(base)
    model = c.models.list().data[0].id
    refs = json.load(open(refs_path))["prompts"]
    report = {"model": model, "completions": [], "chats": []}
    for p in refs:
        wanted = p["generated_text"]
        ends_with_eos = p["generated_ids"][-1] == 2
        if p["prompt"].startswith("<|im_start|>user\n"):
            # A ChatML prompt: the same conversation through the chat API and the server's template.
            question = p["prompt"][len("<|im_start|>user\n"):].split("<|im_end|>")[0]
            messages = [{"role": "user", "content": question}]
            r = c.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=64)
            got = r.choices[0].message.content
            check(got == wanted, f"chat {p['name']}: {got!r} != {wanted!r}")
            check(r.choices[0].finish_reason == "stop", f"chat {p['name']}: finish_reason {r.choices[0].finish_reason}")
            check(r.usage.prompt_tokens == len(p["prompt_ids"]), f"chat {p['name']}: prompt_tokens {r.usage.prompt_tokens} != {len(p['prompt_ids'])}")
            check(r.usage.completion_tokens == len(p["generated_ids"]), f"chat {p['name']}: completion_tokens {r.usage.completion_tokens}")
            check("<|im" not in got, f"chat {p['name']}: template tokens in the reply: {got!r}")
            stream = c.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=64, stream=True,
                                               stream_options={"include_usage": True})
            pieces, reasons, usage = [], [], None
            for chunk in stream:
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
                    if choice.finish_reason:
                        reasons.append(choice.finish_reason)
            streamed = "".join(pieces)
            check(streamed == wanted, f"streamed chat {p['name']}: {streamed!r} != {wanted!r}")
            check(reasons == ["stop"], f"streamed chat {p['name']}: finish reasons {reasons}")
            check(usage is not None and usage.completion_tokens == len(p["generated_ids"]), f"streamed chat {p['name']}: usage {usage}")
            report["chats"].append({"name": p["name"], "text": got, "streamed": streamed, "chunks": len(pieces)})
        else:
            n = len(p["generated_ids"])
            r = c.completions.create(model=model, prompt=p["prompt"], temperature=0, max_tokens=n)
            got = r.choices[0].text
            check(got == wanted, f"completion {p['name']}: {got!r} != {wanted!r}")
            check(r.choices[0].finish_reason == ("stop" if ends_with_eos else "length"), f"completion {p['name']}: finish_reason {r.choices[0].finish_reason}")
            check(r.usage.prompt_tokens == len(p["prompt_ids"]) and r.usage.completion_tokens == n, f"completion {p['name']}: usage {r.usage}")
            streamed = "".join(ch.choices[0].text for ch in c.completions.create(model=model, prompt=p["prompt"], temperature=0,
                                                                                  max_tokens=n, stream=True) if ch.choices)
            check(streamed == wanted, f"streamed completion {p['name']}: {streamed!r} != {wanted!r}")
            report["completions"].append({"name": p["name"], "text": got})
    return report


def disconnect(base):
    c = client(base)
    model = c.models.list().data[0].id
    before = sum(metric_values(base, "strata_requests_cancelled_total"))
    stream = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Tell me a very long story."}],
                                       temperature=0.7, seed=1, max_tokens=1500, stream=True)
    chunks = 0
    held = []
    for chunk in stream:
        chunks += 1
        if chunks == 5:
            # Heartbeats report the KV cache every 0.5 s: wait until one has seen the sequence.
            deadline = time.time() + 10
            while time.time() < deadline:
                held = metric_values(base, "strata_worker_kv_cache_bytes")
                if held and all(v > 0 for v in held):
                    break
                time.sleep(0.1)
            break
    stream.close()
    check(held and all(v > 0 for v in held), f"the open stream held no KV cache on some worker: {held}")
    deadline = time.time() + 15
    freed = None
    while time.time() < deadline:
        freed = metric_values(base, "strata_worker_kv_cache_bytes")
        cancelled = sum(metric_values(base, "strata_requests_cancelled_total"))
        if freed and all(v == 0 for v in freed) and cancelled > before:
            break
        time.sleep(0.2)
    check(freed and all(v == 0 for v in freed), f"KV cache still held after the client left: {freed}")
    check(sum(metric_values(base, "strata_requests_cancelled_total")) > before, "the cancelled request was not counted")
    return {"chunks_read": chunks, "kv_held": held, "kv_after": freed}


def errors(base):
    c = client(base)
    model = c.models.list().data[0].id
    seen = {}

    def expect(name, cls, call):
        try:
            call()
            failures.append(f"{name}: no error")
        except cls as e:
            seen[name] = {"status": e.status_code, "message": str(e)}
        except Exception as e:  # noqa: BLE001 — report any other class as a failure
            failures.append(f"{name}: {type(e).__name__}: {e}")

    msgs = [{"role": "user", "content": "hi"}]
    expect("unknown model", openai.NotFoundError, lambda: c.chat.completions.create(model="gpt-nonexistent", messages=msgs))
    expect("max_tokens too large", openai.BadRequestError, lambda: c.chat.completions.create(model=model, messages=msgs, max_tokens=10**6))
    expect("prompt too long", openai.BadRequestError, lambda: c.completions.create(model=model, prompt="hello " * 5000, max_tokens=4))
    expect("bad temperature", openai.BadRequestError, lambda: c.completions.create(model=model, prompt="hi", temperature=9))
    expect("bad role", openai.BadRequestError, lambda: c.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "hi"}]))
    for name, e in seen.items():
        check(e["status"] in (400, 404), f"{name}: status {e['status']}")
    return seen


def auth(base, key):
    seen = {}
    try:
        client(base, "wrong-key").models.list()
        failures.append("a wrong key was accepted")
    except openai.AuthenticationError as e:
        seen["wrong"] = e.status_code
    r = client(base, key).completions.create(model=client(base, key).models.list().data[0].id, prompt="Hello", max_tokens=3, temperature=0)
    check(len(r.choices) == 1 and r.usage.completion_tokens >= 1, f"the right key got {r}")
    seen["right"] = r.usage.completion_tokens
    return seen


if __name__ == "__main__":
    mode, base = sys.argv[1], sys.argv[2].rstrip("/")
    out = {"reference": lambda: reference(base, sys.argv[3]), "disconnect": lambda: disconnect(base),
           "errors": lambda: errors(base), "auth": lambda: auth(base, sys.argv[3])}[mode]()
    print(json.dumps({"openai": openai.__version__, "result": out, "failures": failures}))
    sys.exit(1 if failures else 0)
