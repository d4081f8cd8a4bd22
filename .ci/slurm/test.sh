#!/usr/bin/env bash
# The Slurm executor's tests against a real single-node Slurm on this machine (needs root):
# installs slurm-wlm + munge if missing, starts the daemons, runs tests/test_slurm.py with
# the `slurm`-marked tests, and stops the daemons again. Extra arguments go to pytest.
# Runs with the active environment's python (or $PYTHON); jobs run with that same interpreter.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
start=$(date +%s)
"$HERE/install.sh"
"$HERE/stop.sh"
trap '"$HERE/stop.sh"' EXIT
"$HERE/start.sh"
cd "$HERE/../.."
status=0
# -P: test the installed package, not the checkout
"$PYTHON" -P -m pytest -q -p no:cacheprovider -m slurm tests/test_slurm.py "$@" || status=$?
echo "slurm tests: exit $status after $(( $(date +%s) - start ))s"
exit $status
