"""Constrained beam search over a candidate trie, batched over prompts: each prompt's prefix is computed
once and its cache expanded over the beams (``transformers``' ``generate`` computes it once per beam),
and the trie's allowed-token masks are built with tensor ops for every beam at once.

It is ``generate(num_beams=B, num_return_sequences=B, length_penalty=0, early_stopping=True)`` with a
logits processor that masks tokens outside the trie, step for step (transformers 5's vectorised beam
search: top 2B continuations, finished hypotheses kept apart, the early-stop heuristic); a test checks
both return the same candidates. Positions come from the attention mask, as ``generate`` computes them
(with left padding a position counts the prompt's real tokens only: computing the prefix without them
shifts every rotary position by the padding and changes the answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

NEG = -1.0e9  # transformers' "not a beam" score


@dataclass(frozen=True)
class TrieTables:
    """A candidate trie as flat tensors. Nodes are numbered with the root 0; node ``u``'s children are
    edges ``ptr[u]:ptr[u + 1]`` (``edge_token``, ``edge_child``), sorted by ``edge_key = u * vocab + token``
    for lookups; ``below[u]`` counts the candidates under ``u``; ``paths[c]`` lists candidate ``c``'s
    nodes from the root's child to its leaf (-1 padded)."""

    ptr: torch.Tensor
    edge_token: torch.Tensor
    edge_child: torch.Tensor
    edge_key: torch.Tensor
    below: torch.Tensor
    paths: torch.Tensor
    vocab: int

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], vocab: int) -> TrieTables:
        """The trie of candidate token sequences (each ending in its own terminal token, e.g. eos)."""
        children: list[dict[int, int]] = [{}]
        below = [0]
        paths = []
        for tokens in sequences:
            node, path = 0, []
            below[0] += 1
            for token in tokens:
                child = children[node].get(token)
                if child is None:
                    child = children[node][token] = len(children)
                    children.append({})
                    below.append(0)
                below[child] += 1
                path.append(child)
                node = child
            paths.append(path)
        edges = [(u * vocab + token, token, child) for u, kids in enumerate(children) for token, child in kids.items()]
        edges.sort()
        counts = torch.tensor([len(kids) for kids in children])
        width = max(map(len, paths))
        return cls(ptr=torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
                   edge_key=torch.tensor([e[0] for e in edges]), edge_token=torch.tensor([e[1] for e in edges]),
                   edge_child=torch.tensor([e[2] for e in edges]), below=torch.tensor(below),
                   paths=torch.tensor([p + [-1] * (width - len(p)) for p in paths]), vocab=vocab)

    def to(self, device: torch.device | str) -> TrieTables:
        return TrieTables(*(getattr(self, f).to(device) for f in ("ptr", "edge_token", "edge_child", "edge_key",
                                                                  "below", "paths")), vocab=self.vocab)

    def banned_below(self, banned: Sequence[Sequence[int]] | None, n: int) -> torch.Tensor:
        """[n, nodes]: how many of prompt i's banned candidates lie under each node."""
        nodes = len(self.below)
        counts = torch.zeros(n * nodes, dtype=torch.long, device=self.below.device)
        if banned:
            rows = torch.tensor([i for i, ids in enumerate(banned) for _ in ids], dtype=torch.long)
            ids = torch.tensor([c for ids in banned for c in ids], dtype=torch.long)
            # a candidate banned twice (an item seen twice in the history) still counts once
            pairs = torch.unique(torch.stack([rows, ids], 1), dim=0).to(self.below.device)
            path = self.paths[pairs[:, 1]]
            keep = path >= 0
            flat = (pairs[:, :1] * nodes + path)[keep]
            counts.index_add_(0, flat, torch.ones_like(flat))
        return counts.view(n, nodes)

    def mask(self, nodes: torch.Tensor, prompt: torch.Tensor, banned_below: torch.Tensor, width: int) -> torch.Tensor:
        """[rows, width] additive mask: 0 for each row's allowed tokens (children of its node with an
        unbanned candidate below), -inf elsewhere; a row at node -1 (off the trie) or a leaf allows none."""
        alive = nodes >= 0
        node = nodes.clamp(min=0)
        counts = torch.where(alive, self.ptr[node + 1] - self.ptr[node], 0)
        rows = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
        starts = torch.repeat_interleave(self.ptr[node] - (counts.cumsum(0) - counts), counts)
        edges = starts + torch.arange(len(rows), device=nodes.device)
        child = self.edge_child[edges]
        ok = self.below[child] > banned_below[prompt[rows], child]
        out = torch.full((len(nodes), width), float("-inf"), device=nodes.device)
        out[rows[ok], self.edge_token[edges[ok]]] = 0.0
        return out

    def step(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The node after ``tokens`` from ``nodes`` (-1 where that edge is not in the trie)."""
        keys = nodes.clamp(min=0) * self.vocab + tokens
        at = torch.searchsorted(self.edge_key, keys).clamp(max=len(self.edge_key) - 1)
        found = (nodes >= 0) & (self.edge_key[at] == keys)
        return torch.where(found, self.edge_child[at], -1)


def _cache_field(output) -> str:
    """The name of the model's key-value cache, in its output and as its forward's argument (transformers
    5.24 renamed ``past_key_values`` to ``cache``)."""
    return "cache" if getattr(output, "cache", None) is not None else "past_key_values"


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions as ``generate`` gives them: real tokens counted from 0, padding at 1."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


@torch.no_grad()
def trie_beam_search(model: torch.nn.Module, encoded: dict[str, torch.Tensor], trie: TrieTables, terminal: int,
                     beams: int, max_new_tokens: int, banned: Sequence[Sequence[int]] | None = None,
                     renormalize: bool = False, **model_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated tokens [n, beams, max_new_tokens], scores [n, beams]) of the finished hypotheses of each
    prompt, best first, as ``generate`` returns them (a slot no hypothesis filled scores -1e9).

    ``encoded``: left-padded ``input_ids`` and ``attention_mask``; ``terminal``: the token that ends a
    candidate (eos); ``model_kwargs`` with a batch dimension (USER-LLM's user states) are expanded over the
    beams; ``renormalize``: each step's log-probabilities renormalized over the allowed tokens."""
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    n, device = ids.shape[0], ids.device
    trie = trie.to(device)
    banned_below = trie.banned_below(banned, n)
    origin = torch.arange(n, device=device)  # the prompts still searching, by their index in the batch
    rows = origin.repeat_interleave(beams)
    # the prefix once per prompt, then one copy per beam; logits of its last position only (the LM head over
    # every prompt position would cost a TP50 prompt ~60 GFLOP and 200 MB)
    out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=True, logits_to_keep=1,
                **model_kwargs)
    field = _cache_field(out)
    cache = getattr(out, field)
    cache.reorder_cache(rows)
    expanded = {k: v.repeat_interleave(beams, 0) if torch.is_tensor(v) and v.shape[0] == n else v
                for k, v in model_kwargs.items()}
    logits = out.logits[:, -1].float().repeat_interleave(beams, 0)
    mask = mask.repeat_interleave(beams, 0)

    width, keep = logits.shape[-1], 2 * beams
    top_num = torch.arange(keep, device=device) < beams
    nodes = torch.zeros(n * beams, dtype=torch.long, device=device)
    running = torch.zeros(n, beams, max_new_tokens, dtype=torch.long, device=device)
    running_scores = torch.zeros(n, beams, device=device)
    running_scores[:, 1:] = NEG
    finished, finished_scores = torch.zeros_like(running), torch.full((n, beams), NEG, device=device)
    is_finished = torch.zeros(n, beams, dtype=torch.bool, device=device)
    improvable = torch.ones(n, 1, dtype=torch.bool, device=device)
    out_sequences, out_scores = finished.clone(), finished_scores.clone()
    for t in range(max_new_tokens):
        active = len(origin)
        batch = torch.arange(active, device=device)[:, None]
        log_probs = logits.log_softmax(-1) + trie.mask(nodes, rows, banned_below, width)
        if renormalize:
            dead = torch.isneginf(log_probs).all(-1, keepdim=True)
            log_probs = torch.where(dead, log_probs, log_probs.log_softmax(-1))
        total = (log_probs.view(active, beams, width) + running_scores[:, :, None]).view(active, -1)
        top_scores, top_index = total.topk(keep)
        source, token = top_index // width, top_index % width
        candidates = running[batch, source].clone()
        candidates[:, :, t] = token
        stops = (token == terminal) | (t + 1 >= max_new_tokens)

        # the best `beams` continuations that did not stop run on
        live_scores = top_scores + stops.float() * NEG
        order = live_scores.topk(beams).indices
        running, running_scores = candidates[batch, order], live_scores[batch, order]
        chosen = batch * beams + source[batch, order]
        nodes = trie.step(nodes[chosen.view(-1)], token[batch, order].view(-1))

        # those among the top `beams` that stopped become finished hypotheses if they beat the worst one
        just = stops & top_num[None, :]
        scores = (top_scores + (is_finished.all(-1, keepdim=True)).float() * NEG + (~improvable).float() * NEG
                  + (~just).float() * NEG)
        merged = torch.cat([finished_scores, scores], 1)
        best = merged.topk(beams).indices
        finished = torch.cat([finished, candidates], 1)[batch, best]
        is_finished = torch.cat([is_finished, just], 1)[batch, best]
        finished_scores = merged[batch, best]
        worst = torch.where(is_finished, finished_scores.min(-1, keepdim=True).values, NEG)
        improvable = improvable & (running_scores[:, :1] > worst).any(-1, keepdim=True)

        # a prompt with every slot finished, or no running beam that can beat its worst, is done: its
        # hypotheses cannot change any more, so it leaves the batch
        done = is_finished.all(-1) | ~improvable[:, 0]
        out_sequences[origin[done]], out_scores[origin[done]] = finished[done], finished_scores[done]
        if done.all() or stops.all():
            break
        if done.any():
            stay = ~done
            origin, chosen = origin[stay], chosen[stay]
            running, running_scores, nodes = running[stay], running_scores[stay], nodes.view(active, beams)[stay].view(-1)
            finished, finished_scores, is_finished = finished[stay], finished_scores[stay], is_finished[stay]
            improvable = improvable[stay]
            kept = stay.repeat_interleave(beams)
            rows, mask = rows[kept], mask[kept]
            expanded = {k: v[kept] if torch.is_tensor(v) and v.shape[0] == active * beams else v
                        for k, v in expanded.items()}
        cache.reorder_cache(chosen.view(-1))
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
        out = model(input_ids=running[:, :, t].reshape(-1, 1), attention_mask=mask,
                    position_ids=_positions(mask)[:, -1:], use_cache=True, **{field: cache}, **expanded)
        cache = getattr(out, field)
        logits = out.logits[:, -1].float()
    out_sequences[origin], out_scores[origin] = finished, finished_scores
    return out_sequences, out_scores
