"""The package as a whole: no import cycle, light commands stay free of torch, a wheel ships every module."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


PLUGINS = "harness.kinds"  # modules whose functions may import later stages (see STAGES)


def imports_of(path: Path, known: set[str], module_level: bool = False) -> set[str]:
    """harness modules `path` imports, at module level or inside functions (a deferred import still couples);
    with `module_level`, only those its module body imports when it is loaded."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in tree.body if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        targets = imports_of(path, known, module_level=name.startswith(PLUGINS)) - {name}
        # Importing a submodule runs its package's __init__ first; a module importing its own package's
        # __init__ (a sibling reached through it) is how packages work, not a cycle.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 20
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_catalog_and_registry_are_leaves():
    graph = import_graph()
    assert graph["harness.registry"] <= {"harness.errors"}
    assert graph["harness.catalog"] <= {"harness.registry"}


# The data flow, stage by stage: a module may import its own stage and earlier ones, never a later one (a deferred
# import counts). A new module is placed here; the test fails until it is.
STAGES = (
    ("foundation", ("harness.errors", "harness.files", "harness.registry", "harness.catalog", "harness.provenance",
                    "harness.prose", "harness.overrides", "harness.units", "harness.yamlsafe", "harness.citations")),
    ("components", ("harness.models", "harness.objectives")),  # what the registry names; spec checks arguments
    # Report kinds (harness/kinds/) are plug-ins: their module level, the schema, belongs to the spec stage; what
    # they render and compare is imported inside their functions, at the stage that calls them.
    ("spec", ("harness.schema", "harness.identity", "harness.matrix", "harness.kinds", "harness.report",
              "harness.search", "harness.spec")),
    ("store", ("harness.store", "harness.checkpoint")),
    ("plan", ("harness.plan", "harness.show", "harness.slurm")),
    ("train", ("harness.data", "harness.fetch", "harness.splits", "harness.sampling", "harness.pipeline",
               "harness.optim", "harness.evaluate", "harness.train")),
    ("execute", ("harness.execute", "harness.jobs")),
    ("aggregate", ("harness.aggregate",)),
    ("claims", ("harness.claims", "harness.preregistration")),
    ("render", ("harness.render.axes", "harness.render.baselines", "harness.render.facts", "harness.render.figures",
                "harness.render.latex", "harness.render.pdf", "harness.render.protocols", "harness.render.tables")),
    ("compare", ("harness.render.compare",)),  # an item as recorded against as rerun (every kind's verify)
    ("document", ("harness.render",)),  # the chapters and the thesis-wide tables, item by item through the kinds
    ("verification", ("harness.verification",)),
    ("commands", ("harness.cli", "harness.__main__", "harness.demo", "harness.rehearsal", "harness.gpucheck")),
)


def stage_of(module: str) -> int | None:
    """The stage whose most specific prefix names the module (harness.render.tables: render)."""
    found = [(len(prefix), index) for index, (_, prefixes) in enumerate(STAGES) for prefix in prefixes
             if module == prefix or module.startswith(prefix + ".")]
    return max(found)[1] if found else None


def against_the_flow(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} ({STAGES[stage_of(module)][0]}) imports {target} ({STAGES[stage_of(target)][0]})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if module != "harness" and stage_of(target) > stage_of(module)]


def test_no_module_imports_a_later_stage():
    graph = import_graph()
    unplaced = sorted(m for m in graph if m != "harness" and stage_of(m) is None)
    assert not unplaced, f"place these modules in STAGES: {unplaced}"
    assert against_the_flow(graph) == []
    # The rule bites: claims reading the renderer's selection, as it once did, is reported.
    assert against_the_flow({"harness.claims": {"harness.render.tables"}}) == [
        "harness.claims (claims) imports harness.render.tables (render)"]


# `harness show <study>` and `harness list` are not among them: they check every component's arguments against its
# factory (torch), so that a misspelt argument shows there and not first at `harness run`.
@pytest.mark.parametrize("argv", [["status", "loss_epochs"], ["--help"], ["run", "--help"]])
def test_light_commands_do_not_import_torch(argv):
    code = ("import sys; from harness import cli\n"
            "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'accelerate', 'pandas', 'matplotlib') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout[-300:]


@pytest.mark.slow
def test_the_wheel_ships_every_module(tmp_path):
    import shutil

    # Built from a copy, so setuptools' build/ and egg-info folders never land in the checkout.
    source = tmp_path / "src"
    shutil.copytree(PACKAGE, source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("harness-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")}
    assert expected <= shipped, sorted(expected - shipped)
    assert not any(name.startswith(("tests/", "results/")) for name in shipped)


def test_study_files_cite_the_original_protocols_in_the_repository():
    """A study header that cites ORIGINAL_PROTOCOLS.md names the copy in experiments/reference/, which covers every seed."""
    target = "experiments/reference/ORIGINAL_PROTOCOLS.md"
    citing = []
    for study in sorted((REPO / "experiments").glob("*.yaml")):
        for number, line in enumerate(study.read_text().splitlines(), 1):
            if "ORIGINAL_PROTOCOLS.md" in line:
                citing.append(study.name)
                assert target in line, f"{study.name}:{number} cites ORIGINAL_PROTOCOLS.md outside the repository"
    assert citing, "no study file cites ORIGINAL_PROTOCOLS.md"
    document = REPO / target
    assert document.is_file(), target
    headings = [line for line in document.read_text().splitlines() if line.startswith("#")]
    for seed in ("000", "001", "002", "003", "004"):
        assert any(f"seed {seed}" in heading for heading in headings), f"{target} has no section for seed {seed}"
