#!/usr/bin/env bash
# The GPU checks of the reconstruction engine in one prepared run, for the lent GPU machine
# (the `device` tool): numpy and cupy give the same images (to 1e-4, the cupy cases of the
# tests) and the time per SIM image on both backends (bench_reconstruction.py).
#
#   bash reconstruction/benchmarks/gpu_check.sh prepare   here: fetch into .whl/ (git-ignored)
#                                                         the wheels the GPU image lacks
#   bash reconstruction/benchmarks/gpu_check.sh run       there, with carry [".whl"]: install
#                                                         them, run the checks; logs in $OUT
#
# The GPU image's python3 (3.12) holds cupy, numpy, scipy, tifffile, pillow and pytest; scope's
# other run-time needs travel as wheels (PYVER=3.11 prepares them for a dry run here).
set -euo pipefail
cd "$(dirname "$0")/../.."

WHEELS=(
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 mrcfile==1.5.4
    psygnal==0.16.1 tomli-w==1.2.0 pyserial==3.5 pytest-timeout==2.4.0
)
TESTS=(tests/test_reconstruction.py tests/test_pattern_map.py tests/test_defects.py
    tests/test_optics_backend_forward.py)

prepare() {
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    rm -rf .whl && mkdir .whl
    local platforms=()
    for n in 28 27 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp \
        --python-version "${PYVER:-3.12}" "${platforms[@]}" -d .whl "${WHEELS[@]}"
    du -sh .whl
}

run() {
    local out=${OUT:-/tmp/gpu-check}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
    { nvidia-smi -L || true; python3 -c 'import cupy, numpy, scipy
print("cupy", cupy.__version__, "numpy", numpy.__version__, "scipy", scipy.__version__)
print("devices", cupy.cuda.runtime.getDeviceCount())'; } 2>&1 | tee "$out/machine.txt" || true
    # every test of these files on every backend: the cupy cases must run, not skip
    python3 -m pytest -q -rs -p no:cacheprovider -o addopts= "${TESTS[@]}" 2>&1 \
        | tee "$out/tests.log" || true
    for backend in numpy cupy; do
        python3 reconstruction/benchmarks/bench_reconstruction.py --backend "$backend" 2>&1 \
            | tee "$out/bench-$backend.txt" || true
    done
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash reconstruction/benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
