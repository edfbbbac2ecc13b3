"""The package's shape, read from its source: no module imports a private name of another module
(benchmarks included), the modules import each other without cycles, and a cached artefact's key
depends only on the code that computes it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from xaifool import cache

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "xaifool"


def _sources():
    yield from sorted(PACKAGE.rglob("*.py"))
    yield from sorted((ROOT / "benchmarks").glob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "src").with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module an ``import from`` names, made absolute for files of the package."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports() -> list[str]:
    """``file:line: from module import _name`` for every private name imported from another module of
    the package, and every ``module._name`` attribute read off an imported package module."""
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text("utf8"), filename=str(path))
        aliases = {}   # local name -> package module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = _absolute(node, path) if path.is_relative_to(PACKAGE) else (node.module or "")
                if not mod.startswith("xaifool"):
                    continue
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {mod} import {a.name}")
                    aliases[a.asname or a.name] = f"{mod}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("xaifool"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another():
    assert private_imports() == []


def test_the_private_import_check_can_fail():
    """The check above finds both forms it looks for (so an empty list means something)."""
    bad = PACKAGE / "_probe_private_import.py"
    bad.write_text("from .metrics import _average_ranks\nfrom . import metrics as M\nM._flat\n")
    try:
        found = private_imports()
    finally:
        bad.unlink()
    assert any("import _average_ranks" in f for f in found) and any("M._flat" in f for f in found)


def _import_graph() -> dict[str, set[str]]:
    """Module → package modules it imports *at module level* (function-level imports may close a cycle)."""
    modules = cache.package_modules()
    graph = {}
    for name, rel in modules.items():
        path = PACKAGE / rel
        tree = ast.parse(path.read_text("utf8"))
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                mod = _absolute(node, path)
                deps.update(m for m in (mod, *(f"{mod}.{a.name}" for a in node.names)) if m in modules)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
        graph[name] = deps - {name}
    return graph


def test_the_package_has_no_import_cycle_between_modules():
    graph = _import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            # a package's __init__ importing its own submodules is how packages work, not a cycle
            if node.startswith(dep + ".") or dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_explain_and_functional_lrp_do_not_import_each_other_both_ways():
    """The old ``explain`` ↔ ``lrp`` cycle: the functional LRP imports only the composite table."""
    graph = _import_graph()
    assert graph["xaifool.explain.lrp_functional"] <= {"xaifool.explain.lrp_composites", "xaifool.models"}
    assert "xaifool.explain.lrp_functional" in graph["xaifool.explain.registry"]


# ---------------------------------------------------------------------------------------------------
# Cache keys follow the code that computes an artefact, and nothing else
# ---------------------------------------------------------------------------------------------------

#: Modules that draw, tabulate or write prose: no cached artefact may depend on them.
PRESENTATION = ("xaifool.plot", "xaifool.__main__", "xaifool.attacks.summary")


def _presentation(name: str) -> bool:
    return name in PRESENTATION or name == "xaifool.book" or name.startswith("xaifool.book.")


def cached_roots() -> dict[str, tuple[str, ...]]:
    """``{"module:line name": depends roots}`` of every ``cached(...)`` / ``cached_call(...)`` call in the
    package, read from the source: ``depends=(__name__,)`` is the calling module, a literal tuple its
    names, ``cached_call`` without ``depends`` the module of the function it caches (its caller's module
    for the functions in this package), and ``cached`` without ``depends`` every computing module."""
    modules = cache.package_modules()
    out = {}
    for name, rel in modules.items():
        tree = ast.parse((PACKAGE / rel).read_text("utf8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))):
                continue
            fn = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if fn not in ("cached", "cached_call") or name == "xaifool.cache":
                continue
            dep = next((k.value for k in node.keywords if k.arg == "depends"), None)
            if dep is None:
                roots = (name,) if fn == "cached_call" else ("*",)
            elif isinstance(dep, ast.Tuple) and all(isinstance(e, ast.Name) and e.id == "__name__" for e in dep.elts):
                roots = (name,)
            elif isinstance(dep, ast.Tuple) and all(isinstance(e, ast.Constant) for e in dep.elts):
                roots = tuple(e.value for e in dep.elts)
            else:
                roots = ("?",)
            out[f"{name}:{node.lineno}"] = roots
    return out


def test_every_cached_artefact_names_the_code_it_depends_on():
    roots = cached_roots()
    assert len(roots) >= 8     # models, attacks, evaluations, sanity tests, scaffolds, … (the check saw them)
    assert {k: r for k, r in roots.items() if r in (("*",), ("?",))} == {}


def test_no_cached_artefact_depends_on_figures_tables_or_prose():
    leaks = {}
    for site, roots in cached_roots().items():
        if roots in (("*",), ("?",)):
            continue   # the test above names these
        bad = [m for m in cache.dependency_closure(roots) if _presentation(m)]
        if bad:
            leaks[site] = bad
    assert leaks == {}


@pytest.mark.parametrize("edited", ["plot.py", "attacks/summary.py", "book/glue.py", "book/__init__.py"])
def test_editing_a_figure_or_summary_keeps_the_keys_of_models_and_attacks(edited, monkeypatch):
    """A manipulated model's and an input attack's key before and after an edit of a presentation file
    (one more line in it): equal. An edit of the fine-tuning or of the attack changes them (the test can fail)."""
    artefacts = {"heo-model": ("xaifool.attacks.heo.models",), "input-attack": ("xaifool.attacks.input",),
                 "heo-evaluate": ("xaifool.attacks.heo.evaluation",), "sanity": ("xaifool.sanity",)}
    settings = {"base": "cifar_resnet20", "attack": "topk", "method": "gradcam"}

    def keys():
        cache.clear_fingerprints()
        return {name: cache.cache_key(name, settings, roots) for name, roots in artefacts.items()}

    before = keys()
    real = cache._read_source
    for target, expect_same in ((edited, True), ("attacks/heo/finetuning.py", False), ("attacks/input.py", False)):
        monkeypatch.setattr(cache, "_read_source",
                            lambda rel, t=target: real(rel) + (b"\n# an edit\n" if rel == t else b""))
        after = keys()
        if expect_same:
            assert after == before
        else:
            changed = {n for n in artefacts if after[n] != before[n]}
            assert changed == ({"heo-model"} if "heo" in target else {"input-attack"})
    monkeypatch.setattr(cache, "_read_source", real)
    cache.clear_fingerprints()


def test_no_package_exports_a_name_of_one_of_its_files():
    """``heo.evaluate`` (a function) and ``heo.evaluate`` (a file) would be one attribute: once the file is
    imported, the package's name points to the module and calling it fails. No package may export a name
    that one of its files has."""
    import importlib

    clashes = {}
    for name, rel in cache.package_modules().items():
        if not rel.endswith("__init__.py"):
            continue
        pkg = importlib.import_module(name)
        files = {p.stem for p in (PACKAGE / rel).parent.glob("*.py")} | \
                {p.name for p in (PACKAGE / rel).parent.iterdir() if (p / "__init__.py").is_file()}
        exported = set(getattr(pkg, "__all__", ()))
        if exported & files:
            clashes[name] = sorted(exported & files)
    assert clashes == {}
