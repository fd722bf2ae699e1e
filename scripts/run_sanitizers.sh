#!/usr/bin/env bash
# Builds atheria_core._core with AddressSanitizer + UndefinedBehaviorSanitizer
# and runs the C-backend tests under it, then restores the normal build.
#   bash scripts/run_sanitizers.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
restore() { ATHERIA_NO_TORCH=1 .venv/bin/python setup.py -q build_ext --inplace -t build/tmp_release >/dev/null; }
trap restore EXIT
ATHERIA_SANITIZE=1 ATHERIA_NO_TORCH=1 .venv/bin/python setup.py -q build_ext --inplace -t build/tmp_asan
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_data_api.py tests/test_engine_api.py tests/test_backend_agreement.py \
    tests/test_engine_perf_paths.py -k "not python" "$@"
# the pure-C programs under the sanitizers too
for prog in tests/c/*.c; do
    gcc -std=c11 -O1 -g -Wall -Wextra -Werror -Wno-missing-field-initializers -D_GNU_SOURCE -fopenmp \
        -fsanitize=address,undefined -fno-sanitize-recover=undefined -Iinclude "$prog" src/core/*.c -lm -o build/asan_prog
    ASAN_OPTIONS=detect_leaks=1 build/asan_prog | tail -n 1
done
