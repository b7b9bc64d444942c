"""The tree shows the architecture: bench's harness never imports the methods' building blocks
(bench.models) or the methods, and no bench module imports itself through others (lazy imports count)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph(package: str) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth-first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


# model tooling a command runs by design: ``bench probe-knowledge`` loads an LLM and probes it
COMMANDS_OF_MODEL_CODE = {"bench/cli.py": {"bench.models.knowledge", "bench.models.knowledge.probe_knowledge",
                                           "bench.models.llm", "bench.models.llm.load_llm"}}


def test_the_harness_imports_no_model_code_and_no_method():
    for path in (ROOT / "bench").rglob("*.py"):
        if "models" in path.relative_to(ROOT / "bench").parts:
            continue
        allowed = COMMANDS_OF_MODEL_CODE.get(str(path.relative_to(ROOT)), set())
        wrong = {m for m in imports(path) - allowed if m.split(".")[0] in ("baselines", "userllm")
                 or m.startswith("bench.models")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_bench_has_no_import_cycle():
    edges = graph("bench")
    cycles = [c for name in sorted(edges) if (c := cycle_from(name, edges))]
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_from("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_from("a", {"a": {"b"}, "b": {"c"}}) is None
