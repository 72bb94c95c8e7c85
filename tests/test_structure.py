"""The package's structure: no import cycle, the layers of docs/design.md, run-directory file names
spelled only in runs.py and schema.py, and nothing of the package importing tests or benchmarks."""

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "act2i_utils"

# Layers, lowest first (docs/design.md): a module may import its own layer or a lower one.
# Stage packages meet only in the run directory; the exceptions are named in ALLOWED_STAGE_IMPORTS.
LAYERS = {
    "foundation": {"errors", "fileio", "typed"},
    "core": {"config", "schema", "cache", "runs", "models", "tiny", "registry", "manifest", "openai_client", "progress",
             "words"},
    "stages": {"benchmark", "enrich", "generate", "evaluate", "annotate", "analysis", "select"},
    "entry": {"pipeline", "cli"},
}
ALLOWED_STAGE_IMPORTS = {
    ("enrich", "benchmark.taxonomy"),  # the knowledge-base enricher reads the agents' body plans
    ("analysis", "annotate"),  # human answers through `annotate.answers`, the live study database
    ("analysis", "select"),  # the honest comparison and cost curve of the selected variants
    # select runs evaluate's own judge (make_judges, judge_all, image_items) on the candidate images, so that
    # its values are the evaluate stage's values and share its cache
    ("select", "evaluate.stage"),
    # select makes the images of rewrite samples 1..n-1 with generate's pipeline loader and per-image seeding
    # (generate itself makes sample 0 only), so that a candidate is made exactly as a generated image
    ("select", "generate.stage"),
    ("select", "generate.pipelines"),
    # select's optional refinement: the failed atoms of evaluate's VQA judge become feedback, and the enrich
    # stage's own backends, checks and cache write the new rewrite (Idea2Img style)
    ("select", "evaluate.atoms"),
    ("select", "enrich"),
    ("select", "enrich.budget"),
}
CONTRACT_NAMES = ("config.yaml", "provenance.json", "benchmark.parquet", "benchmark_enriched.parquet",
                  "prompts.parquet", "enrich_cache.jsonl", "manifest.parquet", "manifest.parts", "scores.parquet",
                  "scores_cache.jsonl", "detections.parquet", "annotations.sqlite", "annotations.parquet",
                  "annotations.csv", "annotation_plan.parquet", "report.html", "selection.parquet",
                  "select_candidates.parquet", "select_cost_curve.parquet", "select_refine.parquet", "annotation_gold", "annotation_blind",
                  "ratings.parquet", "ratings.csv", "raters.csv", "pairs.parquet",
                  "pair_judgements.parquet", "pair_cache.jsonl", "pair_answers.parquet", "pair_answers.csv")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """Every act2i module `name` imports, at the top or inside functions, with the packages whose
    `__init__` an import runs (`from .generate.stage import x` runs `act2i_utils.generate` too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rsplit(".", 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    known = modules()
    targets = set()
    for target in found:
        parts = target.split(".")
        for i in range(2, len(parts) + 1):  # the module and every package above it
            prefix = ".".join(parts[:i])
            if prefix in known:
                targets.add(prefix)
    own = {name} | {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return targets - own


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in modules().items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_inside_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(name: str) -> int:
    for i, members in enumerate(LAYERS.values()):
        if top(name) in members:
            return i
    raise AssertionError(f"{name} belongs to no layer; add it to LAYERS here and in docs/design.md")


def test_modules_import_only_their_layer_or_lower():
    broken = []
    for name, targets in graph().items():
        if name == "act2i_utils":
            continue
        for target in targets:
            if target == "act2i_utils":
                continue
            if layer(target) > layer(name):
                broken.append(f"{name} imports {target} (a higher layer)")
            same_stage_layer = layer(name) == layer(target) == 2 and top(name) != top(target)
            allowed = any(top(name) == src and f"act2i_utils.{dst}".startswith(target) for src, dst in ALLOWED_STAGE_IMPORTS)
            if same_stage_layer and not allowed:
                broken.append(f"{name} imports {target}: stages meet only in the run directory")
    assert not broken, "\n".join(broken)


def test_config_depends_only_on_the_foundation():
    assert {top(t) for t in graph()["act2i_utils.config"]} <= LAYERS["foundation"]


def test_the_package_never_imports_tests_or_benchmarks():
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n and n.split(".")[0] in ("tests", "benchmarks", "conftest") for n in names), name


def docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def contract_literals(source: str) -> list[str]:
    tree = ast.parse(source)
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [n for n in CONTRACT_NAMES if re.search(rf"(?<![\w.]){re.escape(n)}\b", node.value)]
    return found


def test_run_directory_file_names_are_spelled_only_in_runs_and_schema():
    offenders = []
    for name, path in modules().items():
        if name in ("act2i_utils.runs", "act2i_utils.schema"):
            continue
        offenders += [f"{path.relative_to(REPO)}: {n}" for n in contract_literals(path.read_text(encoding="utf-8"))]
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                offenders += [f"{notebook.name}: {n}" for n in contract_literals("".join(cell["source"]))]
    assert not offenders, "use runs.RunPaths instead of spelling these file names:\n" + "\n".join(offenders)


def test_the_literal_check_would_catch_one():
    assert contract_literals('path = root / "scores.parquet"') == ["scores.parquet"]
    assert contract_literals('"""Writes scores.parquet."""') == []


@pytest.mark.parametrize("notebook", sorted((REPO / "notebooks").glob("0[1-6]_*.ipynb")), ids=lambda p: p.name)
def test_stage_notebooks_take_only_the_run_the_profile_and_overrides(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    names = [line.split(":")[0].strip() for line in "".join(params["source"]).splitlines() if line.strip()]
    assert names == ["run_dir", "profile", "overrides"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "params=" not in code and "def " not in code and "class " not in code
