#!/bin/sh
# A Python base image made from Debian packages (debootstrap), for a site that reaches a Debian mirror but
# no container registry. Then: podman build --build-arg PYTHON_IMAGE=localhost/debian-python:bookworm ...
# Usage (root): deploy/docker/local-base.sh [IMAGE] [MIRROR]
set -eu
image=${1:-localhost/debian-python:bookworm}
mirror=${2:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$image"
