"""Weight decay by a declared rule (``bench.models.training.without_decay``): no decay for parameters
with fewer than 2 dimensions and for embedding tables, decay for every linear weight whatever its
name. Each group listed on both encoders and on the real SmolLM2, full and with LoRA."""

from __future__ import annotations

import torch

from bench.context import Budget
from bench.models.event_encoders import AutoregressiveEncoder, DualEncoder, EncoderParams
from bench.models.features import FeatureSpace
from bench.models.llm import attention_projection_names, load_llm
from bench.models.training import make_optimizer, without_decay

from conftest import LLM_CACHE, make_dataset

EMBEDDINGS = {"tower.embed.item.weight", "tower.embed.category.weight", "tower.embed.rating.weight",
              "tower.position.weight"}


def _split(model: torch.nn.Module) -> tuple[set[str], set[str]]:
    """(names that decay, names that do not) among trainable parameters."""
    free = without_decay(model)
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return {n for n, p in params if id(p) not in free}, {n for n, p in params if id(p) in free}


def _space() -> FeatureSpace:
    events = [(f"u{u}", f"i{i}", 10 * u + i) for u in range(3) for i in range(5)]
    return FeatureSpace.of(make_dataset(events, {f"i{i}": [f"c{i % 2}"] for i in range(5)}))


def test_encoders_leave_embedding_tables_norms_and_biases_without_decay():
    config = EncoderParams(layers=1, dim=16, heads=2).encoder_config(8)
    for model, tables in ((AutoregressiveEncoder(_space(), config), EMBEDDINGS),
                          (DualEncoder(_space(), config), EMBEDDINGS | {"label_embedding.weight"})):
        decay, free = _split(model)
        assert {n for n in free if dict(model.named_parameters())[n].ndim >= 2} == tables
        assert all(n.endswith("bias") or "norm" in n for n in free - tables), free - tables
        assert decay and all(dict(model.named_parameters())[n].ndim == 2 for n in decay)
        assert "tower.embed.item.weight" not in decay  # it decayed under the old substring rule


def test_smollm2_full_decays_every_linear_weight_gate_proj_included_and_lora_its_adapters():
    model, _ = load_llm("smollm2-135m", LLM_CACHE)
    decay, free = _split(model)
    assert "model.layers.0.mlp.gate_proj.weight" in decay  # the old rule matched "gate" and skipped it
    assert "model.embed_tokens.weight" in free  # tied to lm_head: one table, no decay
    assert {n.rsplit(".", 2)[-2] for n in decay} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                     "down_proj"}
    assert all("norm" in n for n in free - {"model.embed_tokens.weight"})

    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=4, target_modules=attention_projection_names(model),
                                            task_type="CAUSAL_LM"))
    decay, free = _split(lora)
    assert not free and decay and all(".lora_A." in n or ".lora_B." in n for n in decay)
    optimizer = make_optimizer(lora, Budget(weight_decay=0.01))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01]
