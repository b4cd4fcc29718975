"""The IMDB review VAE (``--preset autoregressive``, the default): its ids and decoder arrays, the model against
the sentence VAE it is built on, training (semi-supervised), exact resume, and evaluate / sample / interpolate
end to end on a tiny aclImdb archive built in the test, with their one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_imdb_task import TINY as TINY_REPEAT
from test_imdb_task import make_archive

from scratchvae import evaluate, interpolate, sample, train
from scratchvae.data.reserved import BOS_ID, EOS_ID
from scratchvae.models.review import ReviewVAE, ReviewVAEConfig
from scratchvae.models.sentence import SentenceVAE
from scratchvae.tasks import imdb as imdb_task
from scratchvae.tasks import imdb_review
from scratchvae.training import load_checkpoint

TINY = [
    "--vocab-size",
    "30",
    "--max-len",
    "12",
    "--decoder-len",
    "8",
    "--embedding-dim",
    "4",
    "--encoder-units",
    "4",
    "--latent-dim",
    "3",
    "--decoder-units",
    "4",
    "--batch-size",
    "4",
    "--val-size",
    "4",
    "--no-progress",
    "--no-download",
    "--backend",
    "numpy",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imdb_review")
    make_archive(folder)
    return folder


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A tiny default-preset run of two epochs with the unlabelled reviews; its best.npz."""
    out = tmp_path_factory.mktemp("run")
    assert (
        train.main(
            [
                "imdb",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--unlabelled",
                "--sentiment-weight",
                "5",
                "--lr",
                "0.01",
                *TINY,
            ]
        )
        == 0
    )
    return out / "best.npz"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------ ids and arrays
def test_model_ids_shift_the_words_past_the_sentence_markers():
    ids = np.array([0, 1, 2, 3, 9])
    model = imdb_review.to_model_ids(ids)
    assert model.tolist() == [0, 1, 4, 5, 11]
    assert imdb_review.to_tokenizer_ids([BOS_ID, *model.tolist(), EOS_ID]).tolist() == [1, 2, 3, 9]


def test_decoder_arrays_rebuild_the_first_words_and_end_only_reviews_that_end():
    enc = np.array(
        [
            [4, 5, 6, 7, 8, 9],  # max_len words: may have been cut, no </s>
            [4, 5, 0, 0, 0, 0],  # ends within decoder_len: </s>
            [6, 7, 8, 9, 4, 0],
        ]
    )  # longer than decoder_len: its first 3 words, no </s>
    inputs, targets = imdb_review.decoder_arrays(enc, decoder_len=3, max_len=6)
    assert targets.tolist() == [[4, 5, 6], [4, 5, EOS_ID], [6, 7, 8]]
    assert inputs.tolist() == [[BOS_ID, 4, 5], [BOS_ID, 4, 5], [BOS_ID, 6, 7]]
    inputs, targets = imdb_review.decoder_arrays(enc[1:2], decoder_len=6, max_len=6)
    assert targets.tolist() == [[4, 5, EOS_ID]] and inputs.tolist() == [[BOS_ID, 4, 5]]


# ------------------------------------------------------------------ the model
def _review_model(**options):
    config = ReviewVAEConfig(
        vocab_size=9, embedding_dim=4, encoder_units=3, decoder_units=4, latent_dim=2, free_bits=0.0, **options
    )
    return ReviewVAE(config, rng=np.random.default_rng(0), backend="numpy", dtype=np.float64)


def test_without_its_head_the_model_is_the_sentence_vae():
    """Sentiment weight 0, the encoder reading the targets: the loss and gradients of the SentenceVAE inside."""
    model = _review_model(sentiment_weight=0.0)
    vae = SentenceVAE(model.config.sentence_config(), rng=np.random.default_rng(1), backend="numpy", dtype=np.float64)
    vae.load_state_dict({k[len("vae/") :]: v for k, v in model.state_dict().items() if k.startswith("vae/")})
    targets = np.array([[4, 5, 6, EOS_ID], [7, 8, EOS_ID, 0]])
    inputs = np.array([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 0]])
    eps = np.random.default_rng(2).standard_normal((2, 2))
    model.zero_grad(), vae.zero_grad()
    terms = model.forward(targets, targets, inputs, np.array([1, 0]), eps, kl_weight=0.6)
    model.backward()
    reference = vae.forward(targets, inputs, eps, kl_weight=0.6)
    vae.backward()
    assert terms["loss"] == pytest.approx(reference["loss"], rel=1e-12) and terms["bce"] > 0
    for name, grad in vae.gradients().items():
        np.testing.assert_allclose(model.gradients()["vae/" + name], grad, rtol=1e-10, atol=1e-12)


def test_the_head_is_linear_in_z_and_flipping_crosses_it():
    model = _review_model()
    w, b = model.sentiment_direction()
    z = np.random.default_rng(3).standard_normal((5, 2))
    np.testing.assert_allclose(model.backend.to_numpy(model.sentiment_logit(z)), z @ w + b, rtol=1e-12)
    task = imdb_review.ReviewTask(model, None, {"decoder_len": 4, "max_len": 6}, batch_size=2, tokenizer=None)
    flipped, logit = imdb_review.flipped_codes(task, z)
    new = flipped @ w + b
    assert np.all(np.sign(new) == -np.sign(logit)) and np.all(np.abs(new) >= imdb_review.FLIP_MARGIN - 1e-9)
    along = np.outer((flipped - z) @ w / (w @ w), w)
    np.testing.assert_allclose(flipped - z, along, atol=1e-12)  # moved along w only
    positive = imdb_review.prior_codes(task, 50, np.random.default_rng(4), "positive")
    assert positive.shape == (50, 2) and np.all(positive @ w + b > 0)


# ------------------------------------------------------------------ training
def settings(argv):
    return train.resolve_settings(train.build_parser().parse_args(argv))


def test_the_default_preset_is_autoregressive_and_semi_supervised(data_dir):
    args = settings(["imdb", *TINY, "--data-dir", str(data_dir), "--unlabelled"])
    task = imdb_task.build_task(args)
    assert isinstance(task.model, ReviewVAE) and args.clipnorm == 5.0
    assert task.data["decoder_len"] == 8 and task.data["truncating"] == "post" and task.data["word_dropout"] == 0.3
    p = task.prepared
    assert (p.train_weights == 0).sum() == 6 and task.tokenizer.vocab_size <= 28  # 30 ids, 4 reserved
    assert task.model.config.vocab_size == task.tokenizer.vocab_size + 2  # no id without a word
    unlabelled = task.train_step(np.flatnonzero(p.train_weights == 0)[:4], np.random.default_rng(0), 0)
    assert "accuracy" not in unlabelled and np.isfinite(unlabelled["loss"]) and unlabelled["rec"] > 0
    labelled = task.train_step(np.arange(4), np.random.default_rng(0), 0)
    assert 0 <= labelled["accuracy"] <= 1 and labelled["bce"] > 0


def test_training_lowers_the_loss_and_records_the_model(trained):
    ckpt = load_checkpoint(trained)
    assert ckpt.meta["model"] == "review" and ckpt.meta["data"]["decoder_len"] == 8
    assert ckpt.meta["objective"]["kl_schedule"]["kind"] == "logistic"
    lines = [json.loads(line) for line in (trained.parent / "metrics.jsonl").read_text().splitlines()]
    epochs = [line for line in lines if "val_rec" in line]
    assert len(epochs) == 2 and {"val_kl", "val_accuracy", "val_nll_per_token", "val_mi"} <= epochs[0].keys()
    assert epochs[1]["val_rec"] < epochs[0]["val_rec"]


def test_resume_continues_exactly(data_dir, tmp_path):
    flags = [
        "imdb",
        "--data-dir",
        str(data_dir),
        *TINY,
        "--epochs",
        "2",
        "--kl-schedule",
        "linear",
        "--kl-steps",
        "6",
        "--unlabelled",
        "--checkpoint-every",
        "2",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train.main([*flags, "--out", str(straight)]) == 0
    assert train.main([*flags, "--out", str(split), "--max-steps", "5"]) == 0  # stops inside epoch 1
    assert train.main([*flags, "--out", str(split), "--resume"]) == 0
    a, b = load_checkpoint(straight / "last.npz"), load_checkpoint(split / "last.npz")
    assert a.meta["progress"]["global_step"] == b.meta["progress"]["global_step"] == 14
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hidden-units", "5"], "--hidden-units is not a setting of the autoregressive preset's model"),
        (["--decoder-len", "20"], "--decoder-len 20 is over --max-len 12"),
        (["--padding", "pre"], "reads post-padded reviews"),
        (["--vocab-size", "4"], "vocab_size=4 leaves no room for words after the 4 reserved ids"),
        (["--tie-embeddings", "--embedding-dim", "5"], "tied embeddings need embedding_dim == decoder_units"),
    ],
)
def test_bad_settings_are_one_line_errors(data_dir, tmp_path, capsys, extra, message):
    assert train.main(["imdb", "--data-dir", str(data_dir), "--out", str(tmp_path / "out"), *TINY, *extra]) == 2
    assert message in _error(capsys)


def test_autoregressive_settings_are_refused_by_the_old_presets(data_dir, tmp_path, capsys):
    assert (
        train.main(
            ["imdb", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"), *TINY_REPEAT, "--word-dropout", "0.5"]
        )
        == 2
    )
    assert "--word-dropout is not a setting of the repeat preset's model" in _error(capsys)


# ------------------------------------------------------------------ the commands
def test_evaluate_reports_every_metric_and_shows_reconstructions_and_flips(trained, data_dir, tmp_path, capsys):
    assert (
        evaluate.main(
            [
                str(trained),
                "--data-dir",
                str(data_dir),
                "--backend",
                "numpy",
                "--no-progress",
                "--no-download",
                "--samples",
                "3",
                "--show",
                "2",
                "--flip",
                "--beam-width",
                "2",
                "--plot",
                str(tmp_path / "z.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (tmp_path / "z.png").read_bytes()[:4] == b"\x89PNG"
    for text in (
        "test reviews              24",
        "reconstruction NLL/token",
        "importance-weighted, K=3",
        "KL",
        "active units",
        "mutual information",
        "token accuracy",
        "sentiment accuracy",
        "original:",
        "greedy:",
        "beam (2):",
        "flipped to",
    ):
        assert text in out, text
    assert out.count("[test review") == 2 and out.count("flipped to") == 2
    nll = float(out.split("reconstruction NLL/token")[1].split()[0])
    assert 0 < nll < np.log(30)  # better than uniform over the vocabulary


def test_evaluate_encode_takes_plain_text_without_the_dataset(trained, tmp_path, capsys):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a boring awful film\n\nsuperb and touching\n", encoding="utf-8")
    assert (
        evaluate.main(
            [
                str(trained),
                "--backend",
                "numpy",
                "--data-dir",
                str(tmp_path / "none"),
                "--no-download",
                "--encode",
                "a wonderful film",
                "--encode-file",
                str(reviews),
                "--flip",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("[your text") == 3 and out.count("flipped to") == 3
    assert "original:       a wonderful film" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--encode", "!!! ..."], "has no words"),
        (["--encode", "zzz qqq"], "no word of 'zzz qqq'"),
        (["--flip"], "--flip decodes the reviews shown or encoded"),
    ],
)
def test_evaluate_bad_input_is_one_line(trained, capsys, argv, message):
    assert evaluate.main([str(trained), "--backend", "numpy", *argv]) == 2
    assert message in _error(capsys)


def test_sample_writes_reviews_of_the_asked_sentiment(trained, capsys):
    for sentiment, side in (("positive", lambda p: p > 0.5), ("negative", lambda p: p < 0.5)):
        assert (
            sample.main(
                [
                    str(trained),
                    "--backend",
                    "numpy",
                    "-n",
                    "4",
                    "--sentiment",
                    sentiment,
                    "--method",
                    "sample",
                    "--temperature",
                    "0.8",
                    "--seed",
                    "1",
                ]
            )
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 4 and all(side(float(line.split()[1])) for line in lines), lines
    assert sample.main([str(trained), "--backend", "numpy", "-n", "2", "--method", "beam", "--beam-width", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_interpolate_between_two_reviews(trained, capsys):
    assert (
        interpolate.main(
            [str(trained), "a wonderful touching film", "boring awful plot", "--steps", "3", "--backend", "numpy"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["0.00", "0.50", "1.00"] and "P(positive)" in lines[0]
    assert interpolate.main([str(trained), "zzz", "boring", "--backend", "numpy"]) == 2
    assert "no word of 'zzz'" in _error(capsys)


def test_commands_refuse_a_model_that_cannot_write(data_dir, tmp_path, capsys):
    out = tmp_path / "repeat"
    assert (
        train.main(
            [
                "imdb",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                "--backend",
                "numpy",
                "--epochs",
                "1",
                *TINY_REPEAT,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert sample.main([str(out / "best.npz"), "--backend", "numpy"]) == 2
    assert "decoder reads z repeated" in _error(capsys)
    assert interpolate.main([str(out / "best.npz"), "good", "bad", "--backend", "numpy"]) == 2
    assert "decoder reads z repeated" in _error(capsys)


def test_sentiment_needs_an_imdb_model(tmp_path, capsys):
    from tiny_data import TINY_LINEAR_KL

    text = tmp_path / "s.txt"
    text.write_text("\n".join(["the cat sat on the mat", "a dog ran home"] * 10), encoding="utf-8")
    assert (
        train.main(["text", "--file", str(text), "--out", str(tmp_path / "t"), *TINY_LINEAR_KL, "--max-steps", "2"])
        == 0
    )
    capsys.readouterr()
    assert sample.main([str(tmp_path / "t" / "last.npz"), "--sentiment", "positive", "--backend", "numpy"]) == 2
    assert "--sentiment needs an IMDB review model" in _error(capsys)


def test_neighbours_are_training_reviews(trained, data_dir, capsys):
    from scratchvae import neighbours

    assert (
        neighbours.main(
            [str(trained), "a wonderful film", "-k", "3", "--data-dir", str(data_dir), "--backend", "numpy"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.split()[1] in ("[positive]", "[negative]") for line in lines)
    similarities = [float(line.split()[0]) for line in lines]
    assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1.0000001 for s in similarities)
    assert neighbours.main([str(trained), "a film", "--data-dir", str(data_dir / "missing"), "--backend", "numpy"]) == 2
    assert "error: " in capsys.readouterr().err
    assert (
        neighbours.main(
            [
                str(trained),
                "a wonderful film",
                "-k",
                "50",
                "--limit",
                "10",
                "--data-dir",
                str(data_dir),
                "--backend",
                "numpy",
            ]
        )
        == 0
    )
    labels = {line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert labels == {"[positive]", "[negative]"}  # --limit draws from both classes (listed by class)


@pytest.mark.skipif(
    not (Path(os.environ.get("SCRATCHVAE_DATA", "/nonexistent")) / "aclImdb_v1.tar.gz").exists(),
    reason="the real data: set SCRATCHVAE_DATA to the folder holding aclImdb_v1.tar.gz",
)
def test_real_data_a_few_steps(tmp_path, capsys):
    assert (
        train.main(
            [
                "imdb",
                "--out",
                str(tmp_path),
                *TINY,
                "--vocab-size",
                "500",
                "--max-len",
                "40",
                "--decoder-len",
                "20",
                "--train-size",
                "40",
                "--val-size",
                "8",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    meta = load_checkpoint(tmp_path / "best.npz").meta
    assert len(json.loads(meta["tokenizer"])["words"]) == 496 and meta["config"]["vocab_size"] == 500
    capsys.readouterr()
    assert (
        evaluate.main(
            [
                str(tmp_path / "best.npz"),
                "--backend",
                "numpy",
                "--test-size",
                "6",
                "--samples",
                "2",
                "--show",
                "1",
                "--flip",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "sentiment accuracy" in capsys.readouterr().out
