"""A peft LoRA adapter as a llama.cpp LoRA GGUF, served on top of the unchanged base GGUF.

llama.cpp's format: `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and
for every adapted weight two tensors named after the base tensor, `<name>.lora_a` (peft's
lora_A, rank x in) and `<name>.lora_b` (lora_B, out x rank). llama.cpp scales by alpha / rank,
as peft does. Names come from gguf's own HF -> GGUF tensor map for the base's architecture,
so an adapter that would not attach is refused here rather than at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smallfirst.distill.lora_base import BaseModel
from smallfirst.errors import InvalidRequestError


def convert_adapter(adapter_dir: Path, base: BaseModel, out: Path) -> Path:
    """Write `out` (a LoRA GGUF) from a peft adapter folder trained on `base`."""
    import gguf
    from peft import PeftConfig
    from peft.utils import load_peft_weights

    config = PeftConfig.from_pretrained(str(adapter_dir))
    weights = load_peft_weights(str(adapter_dir), "cpu")
    arch = next((a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == base.architecture), None)
    if arch is None:
        raise InvalidRequestError(f"gguf does not know architecture {base.architecture!r}")
    names = gguf.get_tensor_name_map(arch, base.layers)
    tensors: list[tuple[str, Any]] = []
    for key in sorted(weights):
        module, _, part = key.rpartition(".lora_")
        suffix = "lora_a" if part.startswith("A") else "lora_b"
        tensors.append((f"{_gguf_name(names, module)}.{suffix}", weights[key].float().numpy()))
    writer = gguf.GGUFWriter(str(out), base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config.lora_alpha))
    for name, array in tensors:
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _gguf_name(names: Any, module: str) -> str:
    """`base_model.model.model.layers.3.self_attn.q_proj` -> `blk.3.attn_q.weight`."""
    hf_name = module.removeprefix("base_model.model.") + ".weight"
    found = names.get_name(hf_name, try_suffixes=(".weight",))
    if found is None:  # the map holds only this architecture's tensors
        raise InvalidRequestError(f"the base has no GGUF tensor for adapter module {module!r}")
    return str(found)
