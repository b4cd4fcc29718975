"""Running the commands as a user does, for tests: ``run_cli`` (a subprocess) and ``assert_one_line_error``.

result = run_cli("train", "mnist", "--batch-size", "0")
assert_one_line_error(result, "--batch-size", "positive integer")
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "train": "scratchvae.train",
    "evaluate": "scratchvae.evaluate",
    "sample": "scratchvae.sample",
    "interpolate": "scratchvae.interpolate",
    "neighbours": "scratchvae.neighbours",
    "curves": "scratchvae.curves",
    "gradcheck": "scratchvae.gradcheck",
    "scratchvae": "scratchvae",
}


def run_cli(
    command: str, *args, cwd=None, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m scratchvae.<command> args...`` in a fresh interpreter, the checkout on PYTHONPATH.

    ``command`` is a key of :data:`MODULES` ("scratchvae" runs ``python -m scratchvae``).
    """
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", MODULES[command], *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A failed command as the standard wants it: a non-zero exit, no traceback, no Python warning, and
    the error, holding every fragment, on the last line of stderr. Returns that line."""
    assert result.returncode != 0, f"exit 0 for a bad invocation; stdout: {result.stdout[-500:]}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "Warning:" not in result.stderr, result.stderr
    line = last_line(result.stderr)
    assert "error: " in line, result.stderr
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in the last line of stderr: {line!r}"
    return line


# ---------------------------------------------------------------------- tiny runs to point commands at
WORDS = "the a cat dog bird sat ran slept on under near mat rug sofa good bad film plot".split()
TINY_FLAGS = {
    "text": [
        "--embedding-dim",
        "4",
        "--encoder-units",
        "4",
        "--decoder-units",
        "4",
        "--latent-dim",
        "2",
        "--batch-size",
        "16",
        "--kl-schedule",
        "linear",
        "--kl-steps",
        "5",
    ],
    "imdb": [
        "--preset",
        "seed",
        "--vocab-size",
        "20",
        "--max-len",
        "8",
        "--embedding-dim",
        "3",
        "--encoder-units",
        "3",
        "--hidden-units",
        "3",
        "--latent-dim",
        "2",
        "--decoder-units",
        "3",
        "--sentiment-units",
        "2",
        "--batch-size",
        "8",
        "--val-size",
        "4",
        "--no-download",
    ],
    "mnist": ["--hidden", "8", "--batch-size", "50"],
}
TINY_FLAGS["ptb"] = TINY_FLAGS["text"]


def sentences(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(2, 8))) for _ in range(n)]


def write_data(folder: Path) -> Path:
    """Tiny data for every task in ``folder``: sentences.txt, ptb/, mnist.npz and aclImdb_v1.tar.gz."""
    import io
    import tarfile

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sentences.txt").write_text("\n".join(sentences(60)) + "\n", encoding="utf-8")
    (folder / "ptb").mkdir(exist_ok=True)
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        (folder / "ptb" / f"ptb.{split}.txt").write_text("\n".join(sentences(n, len(split))) + "\n")
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 255, (n, 28, 28)).astype(np.uint8)
    np.savez(
        folder / "mnist.npz",
        x_train=images(100),
        y_train=rng.integers(0, 10, 100).astype(np.uint8),
        x_test=images(20),
        y_test=rng.integers(0, 10, 20).astype(np.uint8),
    )
    with tarfile.open(folder / "aclImdb_v1.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            for label, rating in (("pos", 8), ("neg", 2)):
                for i, text in enumerate(sentences(10, rating + len(split))):
                    data = text.encode()
                    info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_{rating}.txt")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder


def train_tiny(task: str, data: Path, out: Path) -> Path:
    """A one-epoch run of ``task`` on :func:`write_data`'s data, in-process; returns its run folder."""
    from scratchvae import train

    source = ["--file", str(data / "sentences.txt")] if task == "text" else ["--data-dir", str(data)]
    code = train.main(
        [task, *source, *TINY_FLAGS[task], "--epochs", "1", "--backend", "numpy", "--no-progress", "--out", str(out)]
    )
    assert code == 0 and (out / "last.npz").exists(), f"the tiny {task} run failed"
    return out
