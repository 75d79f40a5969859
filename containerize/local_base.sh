#!/usr/bin/env bash
# Make the image's base, python:3.11-slim, locally, for machines that cannot reach a container
# registry (this project's CI machine reaches only package registries): a Debian bookworm rootfs
# from debootstrap with Debian's Python 3.11, laid out as the official slim image is where the
# generated Dockerfile relies on it (`python` and `pip` on PATH, pip allowed to install), then
# committed with buildah under the name the Dockerfile pulls, docker.io/library/python:3.11-slim.
# Needs root, debootstrap and buildah (apt-get install debootstrap buildah). About a minute.
set -euo pipefail
WORK="${1:-/tmp/stereocrafter-base}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
if buildah inspect --type image docker.io/library/python:3.11-slim >/dev/null 2>&1; then
  echo "docker.io/library/python:3.11-slim is already in buildah's store"; exit 0
fi
rm -rf "$WORK" && mkdir -p "$WORK"
# pip goes into /usr/local as in the official image, from Debian's pip wheel (Debian's python3-pip
# package would pull in a compiler through its Recommends).
debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl,ca-certificates \
  bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
root="$WORK/rootfs"
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED          # the slim image's pip installs freely
# Debian's ensurepip refuses the system Python; pip installs itself from Debian's own pip wheel.
wheel=$(cd "$root" && ls usr/share/python-wheels/pip-*.whl | head -1)
chroot "$root" /usr/bin/python3.11 "/$wheel/pip" install -q --no-index --root-user-action=ignore "/$wheel"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
[ -e "$root/usr/local/bin/pip" ] || ln -sf pip3 "$root/usr/local/bin/pip"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
container=$(buildah from scratch)
mnt=$(buildah mount "$container")
cp -a "$root"/. "$mnt"/
buildah umount "$container"
buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$container"
buildah commit --quiet "$container" docker.io/library/python:3.11-slim
buildah rm "$container" >/dev/null
echo "docker.io/library/python:3.11-slim made from Debian bookworm ($(du -sh "$root" | cut -f1))"
