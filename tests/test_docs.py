"""The learner's guide stays true: its snippets run, its links and excerpts match the code,
``--explain`` shows agreeing columns, and both examples work."""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchvae.gradcheck.__main__ import main as gradcheck_main
from scratchvae.gradcheck.core import Problem
from scratchvae.gradcheck.explain import EXAMPLES, Example, explain, find_example

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
ROW = re.compile(r"^  (\S+\[[\d, ]*\])\s+(-?\d+\.\d{10})\s+(-?\d+\.\d{10})\s+(\d\.\de[+-]\d+)")


def fenced_blocks(text: str) -> list[tuple[str, str, str | None]]:
    """(language, body, marker) of each fenced block; marker: an HTML comment on the line before it."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang = lines[i][3:].strip()
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            previous = lines[i - 1].strip() if i else ""
            marker = previous[4:-3].strip() if previous.startswith("<!--") else None
            blocks.append((lang, "\n".join(lines[i + 1 : j]) + "\n", marker))
            i = j
        i += 1
    return blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def defined_names(path: Path) -> set[str]:
    """'f', 'Class' and 'Class.method' for every function and class defined in a Python file."""
    names = set()

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + child.name)
                if isinstance(child, ast.ClassDef):
                    visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return names


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ the guide
def test_the_guide_has_its_pages_and_the_index_links_each():
    names = {p.name for p in PAGES}
    assert {"README.md", "lstm-bptt.md", "vae.md", "losses.md", "adam.md"} <= names
    index = (GUIDE / "README.md").read_text()
    linked = {target.split("#")[0] for _, target in LINK.findall(index)}
    assert names - {"README.md"} <= linked


def test_the_guide_opens_with_the_plain_training_loop():
    """Before any derivation or Trainer: forward, backward, optimiser step, in a block that runs."""
    index = (GUIDE / "README.md").read_text()
    first = next(body for lang, body, _ in fenced_blocks(index) if lang == "python")
    for call in ("model.forward(", "model.backward()", "optimizer.step()"):
        assert call in first, call
    assert len(first.splitlines()) <= 40
    assert index.index("```python") < index.index("Trainer") < index.index("## Reading order")


@pytest.mark.parametrize("page", [p.name for p in PAGES if "```python" in p.read_text()])
def test_python_snippets_run(page):
    """Each page's python blocks run in order in one namespace; their asserts are the checks."""
    namespace = {"__name__": f"guide_{page}"}
    blocks = [body for lang, body, _ in fenced_blocks((GUIDE / page).read_text()) if lang == "python"]
    for k, body in enumerate(blocks):
        exec(compile(body, f"{page} python block {k + 1}", "exec"), namespace)


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_every_fenced_block_names_its_language(page):
    """python blocks run; anything that must not run says so (text, bash, math)."""
    for lang, body, _ in fenced_blocks((GUIDE / page).read_text()):
        assert lang in ("python", "text", "bash", "math"), f"{page}: block without a known language:\n{body}"


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_links_point_at_existing_files_functions_and_headings(page):
    text = (GUIDE / page).read_text()
    for label, target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        path = (GUIDE / page).parent / path_part if path_part else GUIDE / page
        assert path.exists(), f"{page}: [{label}]({target}) points at a missing file"
        if path.suffix == ".py":
            assert not anchor, f"{page}: {target}: link a file and name the function, not a line"
            name = label.strip("`").removesuffix("()")
            assert label.startswith("`"), f"{page}: name the code in backticks: [{label}]({target})"
            if name.endswith(".py"):
                assert path.as_posix().endswith(name), f"{page}: [{label}] links {target}"
            else:
                assert name in defined_names(path), f"{page}: {name} is not defined in {path_part}"
        elif path.suffix == ".md" and anchor:
            slugs = {github_slug(h) for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M)}
            assert anchor in slugs, f"{page}: no heading #{anchor} in {path.name}"


def test_the_link_checker_catches_a_wrong_function_name():
    assert "LSTM.backward" in defined_names(ROOT / "scratchvae" / "layers" / "lstm.py")
    assert "LSTM.backwards" not in defined_names(ROOT / "scratchvae" / "layers" / "lstm.py")
    assert github_slug("Rule 1: a matrix product") == "rule-1-a-matrix-product"


def test_code_excerpts_are_still_in_the_code():
    """A ```text block after <!-- excerpt: PATH --> quotes PATH line by line."""
    found = 0
    for page in PAGES:
        for _, body, marker in fenced_blocks(page.read_text()):
            if marker and marker.startswith("excerpt:"):
                source = (page.parent / marker.split(":", 1)[1].strip()).read_text()
                code_lines = {line.strip() for line in source.splitlines()}
                for line in body.splitlines():
                    assert not line.strip() or line.strip() in code_lines, (
                        f"{page.name}: the excerpt line {line.strip()!r} is no longer in the code"
                    )
                found += 1
    assert found >= 2


def test_documented_explain_output_is_what_the_command_prints():
    """<!-- output of: python -m scratchvae.gradcheck --explain X --> blocks match the real output
    (the last digits of the tiny differences may vary between machines, so those are masked)."""
    mask = lambda s: re.sub(r"\d\.\de[+-]\d\d", "#", s)  # noqa: E731
    found = 0
    for page in PAGES:
        for _, body, marker in fenced_blocks(page.read_text()):
            if marker and marker.startswith("output of:") and "--explain" in marker:
                out = io.StringIO()
                explain(marker.split("--explain")[1].strip(), out=out)
                assert mask(out.getvalue()) == mask(body), f"{page.name}: stale output of {marker}"
                found += 1
    assert found >= 1


# ------------------------------------------------------------------ --explain
def explain_rows(text: str) -> list[tuple[str, float, float, float]]:
    return [(m[1], float(m[2]), float(m[3]), float(m[4])) for m in map(ROW.match, text.splitlines()) if m]


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_explain_prints_agreeing_analytic_and_numeric_columns(name, capsys):
    code = gradcheck_main(["--explain", name])
    out = capsys.readouterr().out
    assert code == 0
    rows = explain_rows(out)
    problem = EXAMPLES[name].build("numpy", "float64", np.random.default_rng(0))
    assert len(rows) == sum(a.size for a in problem.arrays.values())  # every entry of every array
    for array_name, array in problem.arrays.items():
        assert f"\n{array_name} {tuple(array.shape)}\n" in out
    scale = max(max(abs(a), abs(n)) for _, a, n, _ in rows)
    assert scale > 0
    for label, analytic, numeric, diff in rows:
        assert abs(analytic - numeric) <= 1e-6 * scale + 1e-10, label
        assert diff <= 1e-6 * scale, label
    assert out.strip().splitlines()[-1].startswith("verdict: analytic and numeric gradients agree")


def test_explain_lstm_labels_gates_and_shows_all_parameters(capsys):
    assert gradcheck_main(["--explain", "LSTM"]) == 0
    out = capsys.readouterr().out
    for header in ("x (1, 3, 2)", "kernel (2, 8)", "recurrent_kernel (2, 8)", "bias (8,)"):
        assert f"\n{header}\n" in out
    assert len(explain_rows(out)) == 6 + 16 + 16 + 8
    assert re.search(r"kernel\[1, 3\].*gate f, unit 1", out)


def test_explain_names_are_forgiving_and_unknown_names_fail_cleanly(capsys):
    assert find_example("GaussianSample") == "sample"
    assert find_example("Repeat Vector") == "repeatvector"
    assert find_example("LSTM_steps") == "lstm-steps"
    assert gradcheck_main(["--explain", "transformer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no worked example for 'transformer'") and "lstm" in err


def test_explain_shows_a_wrong_gradient(monkeypatch, capsys):
    right = EXAMPLES["dense"]

    def broken(backend, dtype, rng):
        problem = right.build(backend, dtype, rng)
        grads = problem.gradients
        return Problem(
            problem.loss,
            lambda: {k: v * (1.1 if k == "kernel" else 1.0) for k, v in grads().items()},
            problem.arrays,
            problem.backend,
        )

    monkeypatch.setitem(EXAMPLES, "dense", Example(right.title, right.equations, broken))
    assert gradcheck_main(["--explain", "dense"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE" in out.splitlines()[-1]
    bad = [r for r in explain_rows(out) if r[0].startswith("kernel")]
    assert bad and all(abs(a - 1.1 * n) < 1e-8 for _, a, n, _ in bad)


# ------------------------------------------------------------------ examples
def test_tiny_text_vae_example_learns(capsys):
    """A short run (the full one is 1500 steps): reconstruction loss falls, decodings come out."""
    result = load_example("tiny_text_vae").main(["--steps", "150"])
    rec = result["history"]["rec"]
    assert np.all(np.isfinite(result["history"]["loss"]))
    assert np.mean(rec[-20:]) < 0.6 * np.mean(rec[:20])
    assert len(result["reconstructions"]) == len(result["texts"]) == 3
    assert len(result["interpolation"]) == 5
    assert all(isinstance(s, str) and s for s in result["reconstructions"] + result["interpolation"])
    out = capsys.readouterr().out
    assert "reconstructions" in out and "interpolation from" in out


def test_custom_layer_example_passes_its_check_and_catches_the_broken_one():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_layer.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    good, broken = run.stdout.strip().splitlines()
    assert good.startswith("LayerNorm (examples/custom_layer.py)") and " passed " in good
    assert "FAILED" in broken
    errors = dict(re.findall(r"(\w+) (\d\.\de[+-]\d+)", broken.split("relative errors:")[1]))
    assert float(errors["x"]) > 1e-2 and float(errors["gamma"]) < 1e-6  # only dx was broken
