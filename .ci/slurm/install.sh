#!/usr/bin/env bash
# Install Debian's Slurm (slurmctld + slurmd + client commands) and munge, if missing. Needs root.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slurm-wlm munge >/dev/null
