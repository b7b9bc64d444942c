"""How user embeddings reach the LLM (paper section 3.2).

- ``CrossAttentionFusion`` (Flamingo-style): gated cross-attention blocks run before every k-th decoder
  layer. Text hidden states are the queries; keys and values are projected from the user embeddings in
  their own width. Both tanh gates start at exactly 0, so the conditioned LM starts as the base LM.
- ``SoftPromptFusion``: user embeddings projected to the LLM width, followed by a learned task prompt,
  written into reserved leading token positions ("slots", see ``bench.models.lm_inputs``).

``condition_lm`` turns a Hugging Face causal LM into a subclass whose ``forward`` names ``user_states``,
so ``generate()`` accepts it and expands it over beams like any model input. Every window holds exactly
N events, so the user embeddings need no mask.
Block layers are named ``to_q``/``to_kv``/``to_out``/``ff_*`` so LoRA's target names never match them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class GatedCrossAttention(nn.Module):
    """x + tanh(attn_gate)·CrossAttn(RMSNorm(x), user), then x + tanh(ff_gate)·FFN(RMSNorm(x))."""

    def __init__(self, text_dim: int, user_dim: int, heads: int, ffn_mult: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.RMSNorm(text_dim)
        self.to_q = nn.Linear(text_dim, text_dim, bias=False)
        self.to_kv = nn.Linear(user_dim, 2 * text_dim, bias=False)
        self.to_out = nn.Linear(text_dim, text_dim, bias=False)
        self.ff_norm = nn.RMSNorm(text_dim)
        self.ff_in = nn.Linear(text_dim, ffn_mult * text_dim)
        self.ff_out = nn.Linear(ffn_mult * text_dim, text_dim)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        q = self.to_q(self.norm(x)).view(b, t, h, d // h).transpose(1, 2)
        k, v = (z.view(b, -1, h, d // h).transpose(1, 2) for z in self.to_kv(user.to(q.dtype)).chunk(2, -1))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        y = x + torch.tanh(self.attn_gate) * self.to_out(attended)
        y = y + torch.tanh(self.ff_gate) * self.ff_out(F.gelu(self.ff_in(self.ff_norm(y))))
        return y.to(x.dtype)


class UserFusion(nn.Module):
    """Interface of a fusion: ``slots`` reserved token positions, ``fill`` them, ``attending`` a context."""

    slots = 0

    def fill(self, embeds: torch.Tensor, attention_mask: torch.Tensor, user_states: torch.Tensor) -> torch.Tensor:
        return embeds

    @contextlib.contextmanager
    def attending(self, user_states: torch.Tensor | None) -> Iterator[None]:
        yield


class CrossAttentionFusion(UserFusion):
    """Gated cross-attention blocks hooked in front of decoder layers 0, k, 2k, ..."""

    def __init__(self, layers: nn.ModuleList, text_dim: int, user_dim: int, heads: int, every: int,
                 ffn_mult: int = 4) -> None:
        super().__init__()
        if not 1 <= every <= len(layers):
            raise ValueError(f"cross-attention interval must be in [1, {len(layers)}] (the LLM's layer count), "
                             f"got {every}")
        self.blocks = nn.ModuleDict({str(i): GatedCrossAttention(text_dim, user_dim, heads, ffn_mult)
                                     for i in range(0, len(layers), every)})
        self._context: torch.Tensor | None = None
        for index, block in self.blocks.items():
            layers[int(index)].register_forward_pre_hook(functools.partial(self._before_layer, block),
                                                         with_kwargs=True)

    def _before_layer(self, block: GatedCrossAttention, layer: nn.Module, args: tuple, kwargs: dict):
        if self._context is None:
            return None
        if args:
            return (block(args[0], self._context), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": block(kwargs["hidden_states"], self._context)}

    @contextlib.contextmanager
    def attending(self, user_states: torch.Tensor | None) -> Iterator[None]:
        self._context = user_states
        try:
            yield
        finally:
            self._context = None

    def gates(self) -> dict[str, list[float]]:
        """tanh of each block's (attention, feed-forward) gate, by decoder layer."""
        return {index: [float(torch.tanh(block.attn_gate.detach())), float(torch.tanh(block.ff_gate.detach()))]
                for index, block in self.blocks.items()}


class SoftPromptFusion(UserFusion):
    """Projected user embeddings then a learned task prompt, in the first ``slots`` real positions."""

    def __init__(self, text_dim: int, user_dim: int, user_tokens: int, task_prompt: int, init_std: float) -> None:
        super().__init__()
        self.project = nn.Linear(user_dim, text_dim)
        self.task_prompt = nn.Parameter(torch.randn(task_prompt, text_dim) * init_std)
        self.user_tokens = user_tokens
        self.slots = user_tokens + task_prompt

    def fill(self, embeds: torch.Tensor, attention_mask: torch.Tensor, user_states: torch.Tensor) -> torch.Tensor:
        b = embeds.shape[0]
        if user_states.shape[1] != self.user_tokens:
            raise ValueError(f"soft prompt built for {self.user_tokens} user embeddings, got {user_states.shape[1]}")
        prefix = torch.cat([self.project(user_states.to(self.project.weight.dtype)),
                            self.task_prompt.unsqueeze(0).expand(b, -1, -1)], 1).to(embeds.dtype)
        rank = attention_mask.long().cumsum(-1) - 1
        rows, cols = ((attention_mask == 1) & (rank < self.slots)).nonzero(as_tuple=True)
        filled = embeds.clone()
        filled[rows, cols] = prefix[rows, rank[rows, cols]]
        return filled


class UserConditionedLM:
    """Mixin over a Hugging Face causal LM class: ``forward`` takes the user context by name, positions
    come from the attention mask (left padding), and soft-prompt slots are filled on the prefill."""

    user_fusion: UserFusion

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                user_states: torch.Tensor | None = None, **kwargs):
        if position_ids is None and attention_mask is not None:
            length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers 5.24 renamed it `cache`
        prefill = cache is None or cache.get_seq_length() == 0
        if user_states is not None and self.user_fusion.slots and prefill and inputs_embeds is None:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask  # generate drops all-ones masks
            inputs_embeds = self.user_fusion.fill(self.get_input_embeddings()(input_ids), mask, user_states)
            input_ids = None
        with self.user_fusion.attending(user_states):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   inputs_embeds=inputs_embeds, labels=labels,
                                   **kwargs)


@functools.cache
def _conditioned_class(base: type) -> type:
    return type(f"UserConditioned{base.__name__}", (UserConditionedLM, base), {})


# where each architecture (config.model_type) keeps its decoder layers, as open_flamingo's
# _infer_decoder_layers_attr_name does; another LLM names its own in config.decoder_layers_attr
DECODER_LAYERS = {"llama": "model.layers", "mistral": "model.layers", "qwen2": "model.layers", "qwen3": "model.layers",
                  "gemma": "model.layers", "gemma2": "model.layers", "phi3": "model.layers", "olmo": "model.layers",
                  "gpt2": "transformer.h", "gptj": "transformer.h", "gpt_neox": "gpt_neox.layers",
                  "opt": "model.decoder.layers", "mpt": "transformer.blocks", "falcon": "transformer.h"}


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The LM's list of decoder layers: the path ``config.decoder_layers_attr`` names, else the one the
    table above gives for its ``config.model_type``."""
    kind = getattr(model.config, "model_type", None)
    path = getattr(model.config, "decoder_layers_attr", None) or DECODER_LAYERS.get(kind)
    if path is None:
        raise ValueError(f"USER-LLM does not know where a {kind!r} model ({type(model).__name__}) keeps its decoder "
                         f"layers (known: {', '.join(sorted(DECODER_LAYERS))}); set config.decoder_layers_attr on "
                         "the LLM's config.json to the dotted path of its nn.ModuleList of decoder layers, e.g. "
                         "'model.layers'")
    layers = functools.reduce(lambda module, name: getattr(module, name, None), path.split("."), model)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__}.{path} is not an nn.ModuleList of decoder layers; set "
                         "config.decoder_layers_attr to the dotted path of the one that is")
    return layers


def condition_lm(model: nn.Module, fusion: UserFusion) -> nn.Module:
    """Make ``model`` (in place) a user-conditioned LM with ``fusion`` as its ``user_fusion`` module."""
    model.__class__ = _conditioned_class(type(model))
    model.user_fusion = fusion
    return model
