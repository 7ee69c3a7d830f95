#!/usr/bin/env bash
# Installs what Strata needs on a fresh Debian machine (run as root) and fetches the default
# model: libzmq3-dev (ZeroMQ, for the cluster), iproute2 (`ip netns`, for the tests that put
# workers on separate simulated hosts), tcpdump (a test captures the cluster's traffic to show
# it is encrypted), openssl (tests make a TLS certificate), e2fsprogs and mount (tests give a
# worker a slow disk: ext4 on a loop device, its writes throttled), curl and the PyPI `openai`
# package (clients the HTTP API tests drive the server with), the PyPI `prometheus-client`
# package (the Prometheus project's parser, which reads /metrics in a test), the PyPI `gguf`
# package (the tests' independent dequantization oracle) and SmolLM2-135M-Instruct Q4_1 into
# models/.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libzmq3-dev >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 \
    || ! command -v tcpdump >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 \
    || ! command -v mkfs.ext4 >/dev/null 2>&1 || ! command -v losetup >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq libzmq3-dev iproute2 curl tcpdump openssl e2fsprogs mount >/dev/null
fi
python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0 numpy
python3 -c 'import openai' 2>/dev/null || python3 -m pip install --quiet openai==3.54.0
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet prometheus-client==0.26.0
bash scripts/fetch-model.sh
