"""The project's own files agree with each other."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_deps():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        deps += extra
    return {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower(): d.replace(" ", "") for d in deps}


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower(): d.replace(" ", "") for d in pip if not d.startswith("-e")}
    assert listed == _pyproject_deps()


def test_book_config_fails_on_errors():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["allow_errors"] is False
    assert cfg["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert cfg["execute"]["timeout"] > 0
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    assert {"dollarmath", "amsmath"} <= set(cfg["parse"]["myst_enable_extensions"])


def _toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for v in node.values():
            yield from _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            yield from _toc_files(v)


def test_toc_lists_only_existing_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *_toc_files(toc.get("parts", []))]
    for f in files:
        assert (ROOT / f"{f}.md").is_file(), f
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    assert chapters and all(f"notebooks/{c}" in files for c in chapters)


def test_every_cited_key_is_in_the_bibliography():
    from pybtex.database import parse_file

    keys = set(parse_file(str(ROOT / "book" / "references.bib")).entries)
    texts = [p.read_text() for p in [*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md")]]
    cited = {k.strip() for t in texts for m in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", t) for k in m.split(",")}
    assert cited and cited <= keys, sorted(cited - keys)
    required = {"adebayo2018sanity", "ghorbani2019interpretation", "dombrowski2019explanations", "heo2019fooling",
                "ribeiro2016why", "lundberg2017unified", "selvaraju2017gradcam", "bach2015pixel",
                "smilkov2017smoothgrad", "sundararajan2017axiomatic", "simonyan2014deep", "slack2020fooling",
                "dimanov2020you", "anders2020fairwashing", "lipton2018mythos", "murdoch2019definitions",
                "arrieta2020explainable", "kim2018interpretability", "warnecke2020evaluating",
                "chouldechova2017fair", "xiao2020noise", "spearman1904proof", "dua2017uci"}
    assert required <= keys, sorted(required - keys)


def test_no_data_or_notebook_outputs_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".ipynb", ".pt", ".pth", ".th", ".zip", ".JPEG"))]


def test_every_chapter_converts_to_a_classic_notebook(tmp_path):
    import jupytext

    for md in sorted((ROOT / "notebooks").glob("*.md")):
        nb = jupytext.read(md)
        assert nb.metadata["kernelspec"]["name"] == "python3", md
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, f"{md.name} has no code cells"
        jupytext.write(nb, tmp_path / f"{md.stem}.ipynb")
        assert jupytext.read(tmp_path / f"{md.stem}.ipynb").cells[0].source == nb.cells[0].source
