#!/usr/bin/env bash
# The main job: set up, train the demo experiments (short, CPU) if absent, and
# run the migration checklist through the native engine on each of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python scripts/make_demo_experiments.py --skip-existing
status=0
for exp in DEMO_UNET DEMO_UNET_UNITARY DEMO_UNET_CONVLSTM DEMO_LOCAL_CONV; do
    .venv/bin/python scripts/test_native_engine.py --experiment "$exp" --steps "${STEPS:-50}" || status=1
done
exit $status
