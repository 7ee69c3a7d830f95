#!/usr/bin/env bash
# Builds deploy/Containerfile with podman on a machine that reaches no container registry, only
# Debian's mirror (as the project's own machines do): it makes the two base images locally,
#   localhost/debian:bookworm-slim   a debootstrap'd Debian (minbase), imported
#   localhost/swift:6.3-bookworm     that Debian, the Swift toolchain from $SWIFT_ROOT and the
#                                    libraries the official Swift image carries
# then builds the image as localhost/strata:TAG, with the Swift package mirror and git's URL
# rewrite from this machine mounted into the build (the build stage cannot reach GitHub).
# RUN steps use chroot isolation, for kernels where crun cannot start containers (cgroup v1
# and v2 mixed). Last, it checks the image's binary by running a two-worker cluster on the
# default model as the image's user, in a chroot of the image (containers do not run here).
#
#   bash scripts/build-image-offline.sh [TAG]     (as root; about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-latest}
SWIFT_ROOT=${SWIFT_ROOT:-/opt/swift}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/strata-image.XXXXXX)
trap 'umount "$work"/builder/proc 2>/dev/null || true; rm -rf "$work"' EXIT
command -v podman >/dev/null && command -v debootstrap >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap >/dev/null

if ! podman image exists localhost/debian:bookworm-slim; then
    debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >/dev/null
    tar -C "$work/rootfs" -c . | podman import - localhost/debian:bookworm-slim
fi
if ! podman image exists localhost/swift:6.3-bookworm; then
    [ -d "$work/rootfs" ] || debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >/dev/null
    cp -a "$work/rootfs" "$work/builder"
    cp /etc/resolv.conf "$work/builder/etc/resolv.conf"
    mount -t proc proc "$work/builder/proc"
    chroot "$work/builder" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends binutils git libc6-dev libcurl4-openssl-dev libedit2 libgcc-12-dev libncurses6 libpython3-dev \
        libsqlite3-0 libstdc++-12-dev libxml2-dev libz3-dev pkg-config tzdata zlib1g-dev ca-certificates >/dev/null \
        && rm -rf /var/lib/apt/lists/*'
    umount "$work/builder/proc"
    rm -f "$work/builder/etc/resolv.conf"
    mkdir -p "$work/builder/opt" && cp -a "$SWIFT_ROOT" "$work/builder/opt/swift"
    tar -C "$work/builder" -c . | podman import \
        --change 'ENV PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - localhost/swift:6.3-bookworm
fi

mounts=()
[ -d /opt/swift-packages ] && mounts+=(-v /opt/swift-packages:/opt/swift-packages:ro)
[ -f /etc/gitconfig ] && mounts+=(-v /etc/gitconfig:/etc/gitconfig:ro)
podman build --isolation chroot --network host "${mounts[@]}" \
    --build-arg SWIFT_IMAGE=localhost/swift:6.3-bookworm --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim \
    -f deploy/Containerfile -t "localhost/strata:$TAG" .

# The image's binary, its libraries and its user, on a real generation.
bash scripts/fetch-model.sh >/dev/null
root=$(podman image mount "localhost/strata:$TAG")
mount -t proc proc "$root/proc"; mount --bind "$PWD/models" "$root/mnt"; mount -t tmpfs tmpfs "$root/tmp"
status=0
chroot --userspec=10001:10001 "$root" /usr/bin/env HOME=/var/lib/strata /usr/local/bin/strata local --workers 2 \
    --model /mnt/SmolLM2-135M-Instruct.Q4_1.gguf --prompt "What is 2+2?" --chat -n 12 --threads 1 || status=$?
umount "$root/tmp" "$root/mnt" "$root/proc"
podman image unmount "localhost/strata:$TAG" >/dev/null
podman images "localhost/strata:$TAG"
exit $status
