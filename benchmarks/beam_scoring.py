"""Compare two ways of scoring a constrained beam on next-item prediction with a trained USER-LLM.

Fits USER-LLM (cross-attention, strategy enc, real SmolLM2-135M, ml-100k at N=50; ``--params`` adds or
overrides parameters as JSON) for ``--steps``, then decodes the first ``--examples`` validation users twice:
with the LM's own log-probabilities (what the harness does: a title scores its probability under the
LM, whatever mass the LM puts outside the catalog is lost) and with each step renormalized over the
tokens the trie allows (a title scores only its choices at branch points). Both are scored on the
validation users (settings are compared on validation, never on test) by the harness's metric code,
paired per user, beside popularity on the same users. Run by hand (~2 s per
step, then ~1 s per user for each decoding, on 2 cores once the encoder is cached: 39 minutes at
the defaults):

    .venv/bin/python benchmarks/beam_scoring.py --steps 600 \
        --params '{"encoder_lr": 1e-4, "gate_lr": 2e-2, "user_embeddings": 1}'  # userllm_enc's next-item recipe
"""

from __future__ import annotations

from next_item_fit import benchmark_arguments, fit_userllm, next_item_context, split_of

from bench.evaluation import evaluate
from bench.intervals import paired_difference
from bench.registry import build_params, load_methods


def main() -> None:
    args = benchmark_arguments(__doc__.splitlines()[0], {"encoder_lr": 1e-4, "gate_lr": 2e-2, "user_embeddings": 1},
                               steps=600, examples=551)

    ctx = next_item_context(args.steps, args.lr, eval_batch_size=8)
    method = fit_userllm(ctx, args.params)
    valid = split_of(ctx).valid.subset(slice(0, args.examples))
    popularity_class = load_methods()["popularity"]
    popularity = popularity_class(build_params(popularity_class, {}, "params"))
    popularity.fit(ctx)
    per_user = {"popularity": evaluate(ctx.scoring, ctx.dataset, valid, popularity.predict(ctx, valid))[1]}

    for renormalize in (False, True):
        name = "renormalized" if renormalize else "lm"
        per_user[name] = evaluate(ctx.scoring, ctx.dataset, valid,
                                  method.predict(ctx, valid, renormalize=renormalize))[1]

    print(f"after {args.steps} steps with {args.params}, on {len(valid)} validation users:")
    for metric in ("recall@1", "recall@5", "recall@10"):
        means = ", ".join(f"{name} {values[metric].mean():.4f}" for name, values in per_user.items())
        print(f"  {metric}: {means}")
        for a, b in (("renormalized", "lm"), ("lm", "popularity"), ("renormalized", "popularity")):
            paired = paired_difference(per_user[a][metric], per_user[b][metric])
            print(f"    {a} - {b}: {paired['diff']:+.4f} [{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}] "
                  f"({paired['wins']} / {paired['losses']} users)")


if __name__ == "__main__":
    main()
