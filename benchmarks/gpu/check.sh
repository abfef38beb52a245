#!/usr/bin/env bash
# The GPU check in one command on a GPU machine that cannot download anything (docs/gpu.md):
#
#   make gpu-wheels                        # here: the wheels it lacks, into build/gpu-wheels (<= 64 MiB)
#   bash benchmarks/gpu/check.sh OUT       # there: install them beside the machine's torch, run the check
#
# A virtual environment that sees the machine's own packages (torch with CUDA, numpy, ...) gets the
# wheels, without dependency resolution (nothing can be downloaded); then benchmarks/gpu/check.py runs its
# steps within its time budget and writes OUT/check.json and OUT/check.log. Extra arguments go to check.py.
set -euo pipefail
out=${1:?usage: benchmarks/gpu/check.sh OUT_DIR [check.py options]}
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
wheels=${GPU_WHEELS:-$root/build/gpu-wheels}
venv=${GPU_VENV:-${TMPDIR:-/tmp}/lptem-gpu-venv}
if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "no wheels in $wheels: run 'make gpu-wheels' on a machine with network access first" >&2
    exit 2
fi
mkdir -p "$out"
python3 -m venv --system-site-packages --without-pip "$venv"
python3 -m pip --disable-pip-version-check --python "$venv/bin/python" install --quiet --no-index \
    --no-deps "$wheels"/*.whl 2>&1 | tee "$out/install.log"
# What is still missing, for the record (an import error in check.py's steps says it again, by step).
python3 -m pip --disable-pip-version-check --python "$venv/bin/python" check >> "$out/install.log" 2>&1 \
    || echo "pip check: some requirements are missing (install.log); the steps below say which matter" >&2
exec "$venv/bin/python" "$root/benchmarks/gpu/check.py" --out "$out" "$@"
