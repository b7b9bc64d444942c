#!/usr/bin/env bash
# `bench profile` of the same trials on an earlier commit and on this working tree, one after the other
# in one run (same machine, same load), for before/after figures:
#   benchmarks/compare_trees.sh REF [bench profile arguments...]
#   benchmarks/compare_trees.sh 0e2f9eb suites/quickstart.yaml --only USER-LLM --only TP10-LoRA --steps 10
# REF is checked out as a git worktree in a temporary folder and run with this tree's .venv (its
# modules first on PYTHONPATH); the worktree is removed at the end.
set -euo pipefail
ref=${1:?usage: compare_trees.sh REF [bench profile arguments...]}
shift
here=$(pwd)
before=$(mktemp -d /tmp/bench-before-XXXX)
trap 'git -C "$here" worktree remove --force "$before"' EXIT
git worktree add --detach "$before" "$ref" >/dev/null
for tree in "$before" "$here"; do
  echo "== $(git -C "$tree" log -1 --format='%h %s' | cut -c1-90)$([ "$tree" = "$here" ] && ! git diff --quiet && echo ' (+ uncommitted changes)')"
  (cd "$tree" && PYTHONPATH="$tree" "$here/.venv/bin/python" -m bench.cli profile "$@")
done
