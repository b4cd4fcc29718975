"""Every command's --help: each option explained, its real default shown once (a preset's named as such),
switches without a misleading default, and two or three examples at the end.  Plus the console command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from importlib import import_module

import pytest
from cli import ROOT, run_cli, train_tiny, write_data

from scratchvae import __main__ as console
from scratchvae import curves, evaluate, interpolate, neighbours, sample, train
from scratchvae.gradcheck import __main__ as gradcheck
from scratchvae.tasks import TASKS, task_module

COMMANDS = {
    "sample": sample.main,
    "interpolate": interpolate.main,
    "neighbours": neighbours.main,
    "curves": curves.main,
    "gradcheck": gradcheck.main,
    "evaluate": evaluate.main,
    "train": train.main,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    data = write_data(root / "data")
    return {task: train_tiny(task, data, root / task) for task in TASKS}


def help_of(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*map(str, argv), "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def option_entries(text: str) -> list[list[str]]:
    """The lines of each argument's entry in a help text (before its examples)."""
    entries, current = [], None
    for line in text.split("\nexamples:\n")[0].splitlines():
        if re.match(r"^  \S", line):
            current = [line]
            entries.append(current)
        elif current is not None and line.startswith("    "):
            current.append(line)
        else:
            current = None
    return entries


def example_lines(text: str) -> list[str]:
    return text.rstrip().split("\nexamples:\n")[-1].splitlines()


def parse_example(line: str) -> None:
    """Parse an example command line with the parser of the command it runs (nothing runs)."""
    argv = shlex.split(line.split("  #")[0].replace("mpirun -n 2 ", ""))
    argv = argv[2:] if argv[0] == "python" else argv
    command = argv[0].removeprefix("scratchvae.") if argv[0] != "scratchvae" else argv.pop(1)
    args = argv[1:]
    if command == "train":
        train.build_parser(args[0]).parse_args(args)
    elif command == "evaluate":
        task = next(t for t in ("imdb", "ptb", "mnist", "mine") if f"runs/{t}" in args[0]).replace("mine", "text")
        task_module(task).eval_parser(task).parse_args(args[1:])
    else:
        module = gradcheck if command == "gradcheck" else import_module(f"scratchvae.{command}")
        module.build_parser().parse_args(args)


def check_help(text: str) -> None:
    assert "default: None" not in text
    entries = option_entries(text)
    assert entries, text
    for entry in entries:
        joined = " ".join(line.strip() for line in entry)
        explained = re.split(r"\s{2,}", entry[0].strip(), maxsplit=1)[1:] + entry[1:]
        assert "".join(explained).strip(), f"no help for {entry[0].strip()}"
        assert joined.count("(default") <= 1, f"a default shown twice: {joined}"
        assert "default: True" not in joined and "default: False" not in joined, joined
    examples = text.rstrip().split("\nexamples:\n")
    assert len(examples) == 2, "the help does not end with examples"
    lines = examples[1].splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert all(re.match(r"  (python -m scratchvae|scratchvae |mpirun )", x) for x in lines), lines


def entry(text: str, flag: str) -> str:
    """The entry of ``flag`` in a help text, as one line."""
    found = [e for e in option_entries(text) if re.match(rf"  (\S+, )?{re.escape(flag)}\b", e[0])]
    assert found, f"{flag} is not in the help"
    return " ".join(line.strip() for line in found[0])


@pytest.mark.parametrize(
    "command, argv",
    [
        ("train", []),
        *[("train", [t]) for t in TASKS],
        ("evaluate", []),
        ("sample", []),
        ("interpolate", []),
        ("neighbours", []),
        ("curves", []),
        ("gradcheck", []),
    ],
)
def test_every_help_explains_each_option_once_and_ends_with_examples(capsys, command, argv):
    check_help(help_of(COMMANDS[command], argv, capsys))


@pytest.mark.parametrize("task", TASKS)
def test_the_help_of_evaluate_on_a_checkpoint_lists_its_tasks_options(runs, capsys, task):
    text = help_of(evaluate.main, [runs[task] / "last.npz"], capsys)
    check_help(text)
    own = {"imdb": "--encode", "ptb": "--split", "text": "--column", "mnist": "--plots"}[task]
    assert own in text and entry(text, "--seed").endswith("(default: 0)")


def test_every_example_of_every_help_parses(runs, capsys):
    texts = [
        help_of(COMMANDS[c], argv, capsys)
        for c, argv in [
            ("train", []),
            *[("train", [t]) for t in TASKS],
            ("evaluate", []),
            ("sample", []),
            ("interpolate", []),
            ("neighbours", []),
            ("curves", []),
            ("gradcheck", []),
        ]
    ]
    texts += [help_of(evaluate.main, [runs[task] / "last.npz"], capsys) for task in TASKS]
    console.main([])
    texts.append(capsys.readouterr().out)
    lines = [line for text in texts for line in example_lines(text)]
    assert len(lines) >= 3 * len(texts)
    for line in lines:
        parse_example(line)


def test_evaluate_help_without_a_checkpoint_lists_every_tasks_options(capsys):
    text = help_of(evaluate.main, [], capsys)
    for task in TASKS:
        assert f"options for {task} checkpoints:" in text
    assert "--plots DIR" in text and "--encode TEXT" in text and "--split {valid,test,train}" in text


def test_real_defaults_are_shown_and_a_presets_are_named(capsys):
    mnist = help_of(train.main, ["mnist"], capsys)
    for flag, default in (
        ("--epochs", "50"),
        ("--batch-size", "32"),
        ("--dtype", "float32"),
        ("--checkpoint-every", "200"),
        ("--lr", "0.001"),
        ("--seed", "0"),
    ):
        assert entry(mnist, flag).endswith(f"(default: {default})"), entry(mnist, flag)
    assert "(default" not in entry(mnist, "--no-progress") and "(default" not in entry(mnist, "--resume")
    imdb = help_of(train.main, ["imdb"], capsys)
    # the default preset (autoregressive since issue 22) first; repeat is the default before it
    assert entry(imdb, "--lr").endswith(
        "(default: the preset's: 0.002 for autoregressive, 0.001 for seed, 0.002 for repeat)"
    )
    assert entry(imdb, "--epochs").endswith("(default: the preset's: 3 for autoregressive, 1 for seed, 3 for repeat)")
    assert entry(imdb, "--bucket").endswith(
        "(default: the preset's: on for autoregressive, off for seed, on for repeat)"
    )
    assert entry(imdb, "--clipnorm").endswith(
        "(default: the preset's: 5 for autoregressive, none for seed, none for repeat)"
    )
    assert entry(imdb, "--free-bits").endswith("(default: the preset's: 0.25 for autoregressive)")
    assert "(default" not in entry(imdb, "--no-download")
    text = help_of(sample.main, [], capsys)
    for flag, default in (("--method", "greedy"), ("--temperature", "1.0"), ("-n", "10")):
        assert entry(text, flag).endswith(f"(default: {default})")


def test_threads_and_user_errors_are_declared_once():
    sources = {p: p.read_text() for p in (ROOT / "scratchvae").rglob("*.py")}
    assert [p.name for p, s in sources.items() if '"--threads"' in s] == ["flags.py"]
    assert [p.name for p, s in sources.items() if "USER_ERRORS = " in s] == ["errors.py"]


# ---------------------------------------------------------------------- the console command
def test_scratchvae_lists_every_command_with_a_line(capsys):
    assert console.main([]) == 0
    out = capsys.readouterr().out
    for name in console.COMMANDS:
        assert re.search(rf"^  {name} +\S", out, re.M), name
    assert console.main(["--version"]) == 0 and capsys.readouterr().out.startswith("scratchvae 0.")


def test_the_console_entry_point_runs_each_command(capsys):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["scratchvae"].split(":")
    entry_point = getattr(import_module(module), function)
    assert entry_point is console.main
    for name in console.COMMANDS:
        text = help_of(entry_point, [name], capsys)
        assert "examples:" in text, name
    assert help_of(entry_point, ["train", "mnist"], capsys) == help_of(train.main, ["mnist"], capsys)


def test_python_dash_m_scratchvae_and_the_installed_command():
    result = run_cli("scratchvae")
    assert result.returncode == 0 and "  train " in result.stdout and "  gradcheck " in result.stdout
    result = run_cli("scratchvae", "curves", "--help")
    assert result.returncode == 0 and "usage: python -m scratchvae.curves" in result.stdout
    installed = shutil.which("scratchvae")  # on PATH where the package is installed (CI)
    if installed:
        listing = subprocess.run([installed], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0 and "  evaluate " in listing.stdout
        train_help = subprocess.run([installed, "train", "mnist", "--help"], capture_output=True, text=True, timeout=60)
        assert train_help.returncode == 0 and "--latent-dim" in train_help.stdout
