"""The ptb and text tasks end to end through their command lines, and every bad input as a one-line error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tiny_data import TINY_LINEAR_KL, WORDS, sentences

from scratchvae import evaluate as evaluate_cli
from scratchvae import interpolate, neighbours, sample, train
from scratchvae.training import Checkpoint, load_checkpoint, save_checkpoint


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(sentences(120)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ptb_dir(tmp_path):
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    (root / "ptb" / "ptb.train.txt").write_text("\n".join(f" {s} " for s in sentences(100, 1)) + "\n")
    (root / "ptb" / "ptb.valid.txt").write_text("\n".join(f" {s} <unk> " for s in sentences(20, 2)) + "\n")
    return root


def run(main, argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def trained(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, _, err = run(train.main, ["text", "--file", text_file, "--out", out, "--epochs", 2, *TINY_LINEAR_KL], capsys)
    assert code == 0, err
    return out


# ------------------------------------------------------------------ training and evaluation
def test_text_training_writes_checkpoints_and_logs(trained):
    assert (trained / "best.npz").exists() and (trained / "last.npz").exists()
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 2 and epochs[1]["val_loss"] < epochs[0]["val_loss"]
    assert {"val_rec", "val_kl", "val_elbo_ppl"} <= epochs[0].keys()
    meta = load_checkpoint(trained / "best.npz").meta
    assert meta["task"] == "text" and meta["config"]["latent_dim"] == 2
    assert meta["vocab"][:4] == ["<pad>", "<unk>", "<s>", "</s>"] and set(WORDS) <= set(meta["vocab"])


def test_evaluate_prints_the_metrics_table(trained, capsys):
    code, out, err = run(
        evaluate_cli.main, [trained / "best.npz", "--samples", 5, "--backend", "numpy", "--no-progress"], capsys
    )
    assert code == 0, err
    assert "held-out part of sentences.txt: 6 sentences" in out
    for row in ("NLL (IW, K=5)", "KL", "-ELBO (1 sample)", "PPL", "active units", "MI"):
        assert row in out


def test_evaluate_takes_threads_as_train_does(trained, capsys):
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    before = numba.get_num_threads()
    try:
        code, out, err = run(
            evaluate_cli.main,
            [trained / "best.npz", "--samples", 2, "--limit", 3, "--backend", "numpy", "--no-progress", "--threads", 1],
            capsys,
        )
        assert code == 0, err
        assert numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        numba.set_num_threads(before)
        threadpool_limits(before)
    with pytest.raises(SystemExit):  # argparse: "must be a positive integer"
        evaluate_cli.main([str(trained / "best.npz"), "--threads", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_evaluation_numbers_are_consistent(trained):
    from scratchvae.data.corpus import read_text
    from scratchvae.tasks.sentence import encode_known, evaluate, load_task

    task = load_task(load_checkpoint(trained / "best.npz"), "numpy")
    data = encode_known(read_text(trained.parent / "sentences.txt")[:40], task.vocab, 50, "drop", "test")
    m = evaluate(task.model, data, 20, np.random.default_rng(0))
    assert m["tokens"] == int(data.lengths.sum()) == sum(len(s.split()) + 1 for s in sentences(120)[:40])
    assert m["ppl"] == pytest.approx(math.exp(m["nll"] * m["sentences"] / m["tokens"]))
    assert m["nll"] <= m["neg_elbo"] + 1.0  # the IW bound is at least as tight as the ELBO
    assert m["kl"] >= 0 and 0 <= m["active_units"] <= 2


def test_ptb_task_trains_and_evaluates_on_valid(ptb_dir, tmp_path, capsys):
    out = tmp_path / "ptb"
    code, _, err = run(train.main, ["ptb", "--data-dir", ptb_dir, "--out", out, "--epochs", 1, *TINY_LINEAR_KL], capsys)
    assert code == 0, err
    code, text, err = run(
        evaluate_cli.main, [out / "best.npz", "--samples", 3, "--backend", "numpy", "--no-progress"], capsys
    )
    assert code == 0, err
    tokens = sum(len(s.split()) + 2 for s in sentences(20, 2))  # words, <unk> and </s>
    assert f"PTB valid: 20 sentences, {tokens} tokens" in text


def test_the_test_split_is_evaluated_only_when_asked_and_present(ptb_dir, tmp_path, capsys):
    out = tmp_path / "ptb"
    code, _, err = run(train.main, ["ptb", "--data-dir", ptb_dir, "--out", out, "--epochs", 1, *TINY_LINEAR_KL], capsys)
    assert code == 0, err
    evaluate_test = [
        out / "best.npz",
        "--split",
        "test",
        "--data-dir",
        ptb_dir,
        "--samples",
        3,
        "--backend",
        "numpy",
        "--no-progress",
        "--no-download",
    ]
    code, _, err = run(evaluate_cli.main, evaluate_test, capsys)
    assert_one_line_error(code, err, "PTB test split not found", "ptb.test.txt")
    (ptb_dir / "ptb" / "ptb.test.txt").write_text("\n".join(f" {s} " for s in sentences(15, 3)) + "\n")
    code, text, err = run(evaluate_cli.main, evaluate_test, capsys)
    assert code == 0, err
    tokens = sum(len(s.split()) + 1 for s in sentences(15, 3))  # words and </s>
    assert f"PTB test: 15 sentences, {tokens} tokens" in text


def test_csv_column_and_glove_frozen_embeddings(tmp_path, capsys):
    csv_path = tmp_path / "questions.csv"
    rows = ["id,question1,question2"] + [f'{i},"{s}?",other' for i, s in enumerate(sentences(60))]
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    glove = tmp_path / "vectors.txt"
    vectors = {w: np.round(np.random.default_rng(i).standard_normal(8), 4) for i, w in enumerate(WORDS[:10])}
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    out = tmp_path / "quora"
    code, text, err = run(
        train.main,
        [
            "text",
            "--file",
            csv_path,
            "--column",
            "question1",
            "--out",
            out,
            "--epochs",
            1,
            "--glove",
            glove,
            "--freeze-embeddings",
            *TINY_LINEAR_KL,
        ],
        capsys,
    )
    assert code == 0, err
    ckpt = load_checkpoint(out / "last.npz")
    vocab, table = ckpt.meta["vocab"], ckpt.params["embedding/embeddings"]
    assert "?" in vocab
    for word, vector in vectors.items():
        np.testing.assert_allclose(table[vocab.index(word)], vector, rtol=1e-6)  # loaded and not trained
    assert ckpt.meta["config"]["train_embeddings"] is False


def test_resume_continues_exactly(tmp_path, text_file, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = ["text", "--file", text_file, *TINY_LINEAR_KL, "--word-dropout", "0.4", "--decoder-dropout", "0.3"]
    assert run(train.main, [*args, "--out", straight, "--epochs", 2], capsys)[0] == 0
    assert run(train.main, [*args, "--out", split, "--epochs", 1], capsys)[0] == 0
    assert run(train.main, [*args, "--out", split, "--epochs", 2, "--resume"], capsys)[0] == 0
    assert load_checkpoint(split / "last.npz").meta["config"]["decoder_dropout"] == 0.3
    a, b = load_checkpoint(straight / "last.npz").params, load_checkpoint(split / "last.npz").params
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_long_sentences_are_dropped_or_truncated(text_file):
    from scratchvae.tasks.sentence import build_task

    parser = train.build_parser()
    base = ["text", "--file", str(text_file), *TINY_LINEAR_KL, "--max-len", "4", "--valid-fraction", "0"]
    dropped = build_task(parser.parse_args([*base, "--on-long", "drop"]))
    truncated = build_task(parser.parse_args([*base, "--on-long", "truncate"]))
    assert len(truncated.train) == 120 > len(dropped.train) > 0
    assert truncated.train.lengths.max() == dropped.train.lengths.max() == 5  # 4 words + </s>
    assert truncated.valid is None


# ------------------------------------------------------------------ generation
def test_sample_interpolate_and_neighbours(trained, capsys):
    ckpt = trained / "best.npz"
    for method in ("greedy", "sample", "beam"):
        code, out, err = run(sample.main, [ckpt, "-n", 4, "--method", method, "--backend", "numpy"], capsys)
        assert code == 0, err
        lines = out.split("\n")[:-1]
        assert len(lines) == 4 and all(set(line.split()) <= set(WORDS) | {"<unk>"} for line in lines)
    code, out, err = run(
        interpolate.main, [ckpt, "the cat sat on the mat", "a dog ran", "--steps", 6, "--backend", "numpy"], capsys
    )
    assert code == 0, err
    assert [line.split("  ")[0] for line in out.splitlines()] == ["0.00", "0.20", "0.40", "0.60", "0.80", "1.00"]
    code, out, err = run(neighbours.main, [ckpt, "the cat sat", "-k", 3, "--backend", "numpy"], capsys)
    assert code == 0, err
    similarities = [float(line.split("  ")[0]) for line in out.splitlines()]
    assert len(similarities) == 3 and similarities == sorted(similarities, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in similarities)


def test_neighbours_of_a_training_sentence_include_itself(trained, capsys):
    query = sentences(120)[0]
    code, out, err = run(neighbours.main, [trained / "best.npz", query, "-k", 200, "--backend", "numpy"], capsys)
    assert code == 0, err
    best = out.splitlines()[0].split("  ")
    assert float(best[0]) == pytest.approx(1.0)
    assert query in [line.split("  ")[1] for line in out.splitlines() if float(line.split("  ")[0]) > 0.9999]


def test_cosine_nearest():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    top, sim = neighbours.cosine_nearest(np.array([2.0, 0.1]), keys, 2)
    assert top.tolist() == [0, 2] and sim[0] > sim[1]


# ------------------------------------------------------------------ bad input: one line each
def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code, _, err = run(train.main, ["text", "--file", empty, "--out", tmp_path / "r", *TINY_LINEAR_KL], capsys)
    assert_one_line_error(code, err, "empty.txt is empty")


def test_csv_without_the_column(tmp_path, capsys):
    path = tmp_path / "q.csv"
    path.write_text("id,question1\n1,hello there\n")
    code, _, err = run(
        train.main, ["text", "--file", path, "--column", "question2", "--out", tmp_path / "r", *TINY_LINEAR_KL], capsys
    )
    assert_one_line_error(code, err, "no column 'question2'", "id, question1")


def test_lines_of_only_unknown_words(tmp_path, trained, capsys):
    path = tmp_path / "unk.txt"
    path.write_text("<unk> <unk>\n<unk>\n")
    code, _, err = run(train.main, ["text", "--file", path, "--out", tmp_path / "r", *TINY_LINEAR_KL], capsys)
    assert_one_line_error(code, err, "only unknown words")
    rare = tmp_path / "rare.txt"
    rare.write_text("each word once\nnever twice here\n")
    code, _, err = run(
        train.main, ["text", "--file", rare, "--min-count", 2, "--out", tmp_path / "r", *TINY_LINEAR_KL], capsys
    )
    assert_one_line_error(code, err, "only unknown words", "--min-count")
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("zebra xylophone\nquartz\n")
    code, _, err = run(evaluate_cli.main, [trained / "best.npz", "--file", foreign, "--backend", "numpy"], capsys)
    assert_one_line_error(code, err, "foreign.txt has only unknown words")


def test_non_utf8_bytes(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    code, _, err = run(train.main, ["text", "--file", path, "--out", tmp_path / "r", *TINY_LINEAR_KL], capsys)
    assert_one_line_error(code, err, "line 1", "not UTF-8")


def test_interpolation_sentence_with_no_known_word(trained, capsys):
    code, _, err = run(
        interpolate.main, [trained / "best.npz", "the cat", "zebra xylophone", "--backend", "numpy"], capsys
    )
    assert_one_line_error(code, err, "no known word in 'zebra xylophone'")
    code, _, err = run(neighbours.main, [trained / "best.npz", "qwerty", "--backend", "numpy"], capsys)
    assert_one_line_error(code, err, "no known word")


def test_missing_data_and_wrong_checkpoints(tmp_path, capsys):
    code, _, err = run(
        train.main, ["ptb", "--data-dir", tmp_path, "--out", tmp_path / "r", "--no-download", *TINY_LINEAR_KL], capsys
    )
    assert_one_line_error(code, err, "PTB train split not found")
    code, _, err = run(sample.main, [tmp_path / "nothing.npz"], capsys)
    assert_one_line_error(code, err, "no checkpoint at")
    other = tmp_path / "mnist.npz"
    save_checkpoint(other, Checkpoint({"w": np.zeros(2)}, {"task": "mnist"}))
    code, _, err = run(interpolate.main, [other, "a", "b"], capsys)
    assert_one_line_error(code, err, "'mnist' model, not a sentence VAE")


def test_freeze_without_glove_is_refused(text_file, tmp_path, capsys):
    code, _, err = run(
        train.main,
        ["text", "--file", text_file, "--freeze-embeddings", "--out", tmp_path / "r", *TINY_LINEAR_KL],
        capsys,
    )
    assert_one_line_error(code, err, "--glove")


def test_tied_embeddings_train_evaluate_and_generate(text_file, tmp_path, capsys):
    out = tmp_path / "tied"
    code, _, err = run(
        train.main,
        ["text", "--file", text_file, "--out", out, "--max-steps", 4, "--tie-embeddings", *TINY_LINEAR_KL],
        capsys,
    )
    assert code == 0, err
    assert load_checkpoint(out / "last.npz").meta["config"]["tie_embeddings"] is True
    code, out_text, err = run(
        evaluate_cli.main, [out / "last.npz", "--samples", 3, "--backend", "numpy", "--no-progress"], capsys
    )
    assert code == 0 and "NLL (IW, K=3)" in out_text, err
    code, out_text, err = run(sample.main, [out / "last.npz", "-n", 2, "--backend", "numpy"], capsys)
    assert code == 0 and len(out_text.strip().splitlines()) >= 2, err


def test_tied_embeddings_need_equal_sizes(text_file, tmp_path, capsys):
    code, _, err = run(
        train.main,
        [
            "text",
            "--file",
            text_file,
            "--tie-embeddings",
            "--embedding-dim",
            "4",
            "--decoder-units",
            "6",
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "--tie-embeddings needs --embedding-dim equal to --decoder-units (got 4 and 6)")


def test_a_step_sharded_over_ranks_equals_the_whole_batch(text_file):
    """What --distributed does: shards' gradients, weighted by their share, sum to the batch's (word dropout on)."""
    from scratchvae.tasks.sentence import build_task
    from scratchvae.training.distributed import ShardRandom, shard_rows

    args = train.build_parser().parse_args(
        ["text", "--file", str(text_file), *TINY_LINEAR_KL, "--word-dropout", "0.5", "--dtype", "float64"]
    )
    task = build_task(args)
    batch = task.epoch_batches(np.random.default_rng(0))[0]
    step_rng = lambda: np.random.default_rng([0, 2, 7])
    task.model.zero_grad()
    whole = task.train_step(batch, step_rng(), 7)
    expected = {k: v.copy() for k, v in task.model.gradients().items()}
    total = {k: np.zeros_like(v) for k, v in expected.items()}
    loss = 0.0
    for rank in range(3):
        rows = shard_rows(len(batch), rank, 3)
        task.model.zero_grad()
        m = task.train_step(batch[rows], ShardRandom(step_rng(), rows, len(batch)), 7)
        weight = (rows.stop - rows.start) / len(batch)
        loss += weight * m["loss"]
        for k, g in task.model.gradients().items():
            total[k] += weight * g
    assert loss == pytest.approx(whole["loss"], rel=1e-12)
    for k in expected:
        np.testing.assert_allclose(total[k], expected[k], rtol=1e-9, atol=1e-13)
