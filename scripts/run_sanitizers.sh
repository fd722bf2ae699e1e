#!/usr/bin/env bash
# Builds atheria_core._core AND the LibTorch shim (_torch_shim) with
# AddressSanitizer + UndefinedBehaviorSanitizer, runs the WHOLE test suite
# under them with PYTHONMALLOC=debug, runs the pure-C programs under them
# (with leak detection), then restores the normal build.  docs/build.md.
#   bash scripts/run_sanitizers.sh [extra pytest args]
#   PYTHON=/path/to/python bash scripts/run_sanitizers.sh   (another interpreter/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ -z "${PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then bash scripts/setup_env.sh; fi
restore() { nice -n 5 "$PY" setup.py -q build_ext --inplace --force -t build/tmp_release >/dev/null 2>&1 || echo "restore build failed"; }
trap restore EXIT
ATHERIA_SANITIZE=1 nice -n 5 "$PY" setup.py -q build_ext --inplace --force -t build/tmp_asan
"$PY" - <<'PYEOF'
import glob, subprocess
for so in glob.glob("python/atheria_core/_core*.so") + glob.glob("python/atheria_core/_torch_shim*.so"):
    deps = subprocess.run(["ldd", so], capture_output=True, text=True).stdout
    assert "libasan" in deps and "libubsan" in deps, f"{so} is not built with the sanitizers"
    print("sanitized:", so)
PYEOF
# The interpreter itself is not instrumented, so the ASan runtime must come
# first: LD_PRELOAD.  Leak detection is off for the Python process (CPython
# and torch keep allocations alive at exit); the C programs below run with it.
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONMALLOC=debug
# The load test's bounded-memory assertion measures the server's RSS, which ASan's
# quarantine and shadow memory make meaningless: it runs (unsanitized) in the normal suite.
nice -n 5 "$PY" -m pytest -q -p no:cacheprovider tests \
    --deselect tests/test_server_load.py::test_load_many_clients_bad_messages_and_stuck_readers "$@"
unset LD_PRELOAD PYTHONMALLOC
# the pure-C programs under the sanitizers, leaks included
mkdir -p build
for prog in tests/c/*.c; do
    gcc -std=c11 -O1 -g -Wall -Wextra -Werror -Wno-missing-field-initializers -D_GNU_SOURCE -fopenmp \
        -fsanitize=address,undefined -fno-sanitize-recover=undefined -Iinclude "$prog" src/core/*.c -lm -o build/asan_prog
    printf '%s: ' "$prog"
    ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 build/asan_prog | tail -n 1
done
