#!/usr/bin/env python3
"""Independent oracle for Strata's QuantKernels tests, built on the PyPI `gguf` package (numpy).

    dequant_oracle.py dequantize TYPE IN OUT [TYPE IN OUT ...]
        IN holds raw GGUF blocks of TYPE; OUT receives their f32 dequantization (little-endian)
        computed by gguf.quants.dequantize.
    dequant_oracle.py quantize TYPE IN OUT [TYPE IN OUT ...]
        IN holds f32 values; OUT receives the raw blocks of TYPE. Q8_0 uses gguf.quants.quantize
        (bit-exact with ggml's quantize_row_q8_0_ref). gguf has no Q8_1 or Q8_K quantizer, so those
        two are computed here in numpy, transcribing ggml's quantize_row_q8_1_ref / q8_K_ref.

TYPE is a ggml type name (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K, IQ4_XS,
Q8_1, Q8_K).
Exits non-zero with a message on stderr when numpy or gguf is missing or a type is unknown.
"""
import sys

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize, quantize, np_roundf
except ImportError as e:  # the Swift test turns this into a failure with this message
    sys.exit(f"dequant_oracle.py: cannot import numpy/gguf ({e}); install with: pip install gguf==0.19.0")


def qtype(name):
    try:
        return gguf.GGMLQuantizationType[name]
    except KeyError:
        sys.exit(f"dequant_oracle.py: unknown type {name}")


def quantize_q8_1(x):
    """ggml quantize_row_q8_1_ref: d = amax/127, q = roundf(x/d) (halves away from 0), s = fp16(d*sum(q))."""
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np_roundf(blocks * inv).astype(np.int8)
    s = q.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d
    return np.concatenate([d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8),
                           q.view(np.uint8)], axis=1)


def quantize_q8_K(x):
    """ggml quantize_row_q8_K_ref: iscale = -127/max (max = the value of largest magnitude),
    q = min(127, nearest-even(iscale*x)), d = 1/iscale, bsums over 16s; all-zero block -> zeros."""
    out = []
    for blk in x.reshape(-1, 256):
        i = int(np.argmax(np.abs(blk)))  # first index of the largest |x|, as ggml's strict '>' loop
        mx = blk[i]
        if mx == 0:
            out.append(np.zeros(292, dtype=np.uint8))
            continue
        iscale = np.float32(-127) / mx
        q = np.minimum(np.rint(iscale * blk), 127).astype(np.int8)
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.array([np.float32(1) / iscale], dtype=np.float32)
        out.append(np.concatenate([d.view(np.uint8), q.view(np.uint8), bsums.view(np.uint8)]))
    return np.stack(out)


def main(argv):
    if len(argv) < 5 or (len(argv) - 2) % 3 != 0 or argv[1] not in ("dequantize", "quantize"):
        sys.exit(__doc__)
    mode = argv[1]
    for k in range(2, len(argv), 3):
        name, src, dst = argv[k], argv[k + 1], argv[k + 2]
        if mode == "dequantize":
            raw = np.fromfile(src, dtype=np.uint8)
            out = dequantize(raw, qtype(name))
            np.asarray(out, dtype="<f4").tofile(dst)
        else:
            x = np.fromfile(src, dtype="<f4")
            if name == "Q8_0":
                out = quantize(x, qtype(name))
            elif name == "Q8_1":
                out = quantize_q8_1(x)
            elif name == "Q8_K":
                out = quantize_q8_K(x)
            else:
                sys.exit(f"dequant_oracle.py: no quantizer for {name}")
            np.asarray(out, dtype=np.uint8).tofile(dst)


if __name__ == "__main__":
    main(sys.argv)
