"""QLoRA in the workers: the base loaded quantized by bitsandbytes (the recipe named by `options['quantization']`,
see `spec.QUANTIZATIONS`) and prepared by PEFT for training LoRA adapters on top of it."""

from __future__ import annotations

import os
from typing import Any

from .common import weight_dtype
from .spec import Spec, quantization_recipe


def load_base(model_class: Any, base: str, spec: Spec, **kwargs: Any) -> Any:
    """`model_class.from_pretrained(base)` in the job's weight dtype, quantized and `prepared` when the job asks."""
    model = model_class.from_pretrained(base, dtype=weight_dtype(spec), **loading_kwargs(spec), **kwargs)
    return prepared(model, spec)


def bnb_config(recipe: dict[str, Any]):
    """The `transformers.BitsAndBytesConfig` of a quantization recipe."""
    from transformers import BitsAndBytesConfig

    if recipe["bits"] != 4:
        raise ValueError(f"no bitsandbytes config for {recipe['bits']}-bit weights")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=recipe["quant_type"],
        bnb_4bit_use_double_quant=recipe["double_quant"],
        bnb_4bit_compute_dtype=recipe["compute_dtype"],
        bnb_4bit_quant_storage=recipe["storage_dtype"],  # the dtype FSDP shards the packed weights in
    )


def loading_kwargs(spec: Spec) -> dict[str, Any]:
    """Extra `from_pretrained` keywords: with a quantization, its config and this process's GPU as the device."""
    recipe = quantization_recipe(spec.opt("quantization"))
    if recipe is None:
        return {}
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"quantization={spec.opt('quantization')!r} needs a CUDA GPU (bitsandbytes);"
                           " none is visible")
    return {"quantization_config": bnb_config(recipe), "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def prepared(model: Any, spec: Spec) -> Any:
    """A quantized base frozen and made trainable under adapters (`peft.prepare_model_for_kbit_training`); any other
    model as it is."""
    if quantization_recipe(spec.opt("quantization")) is None:
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(spec.opt("gradient_checkpointing")))
