"""Decoding from latent codes: greedy, sampling with a temperature, beam search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scratchvae.data.reserved import BOS_ID, EOS_ID, PAD_ID
from scratchvae.models import generate
from scratchvae.models.sentence import SentenceVAE, SentenceVAEConfig


def make_model(backend="numpy", vocab_size=8, eos_bias=0.0, seed=0):
    config = SentenceVAEConfig(vocab_size=vocab_size, embedding_dim=4, encoder_units=5, decoder_units=6, latent_dim=3)
    model = SentenceVAE(config, rng=np.random.default_rng(seed), backend=backend, dtype=np.float64)
    out = model.output.params
    out["kernel"][...] *= 3.0  # peaked distributions: decoding choices matter
    out["bias"][EOS_ID] += eos_bias
    return model


def sequence_logp(model, words, z):
    """log p(words </s> | z) under the model, by teacher forcing."""
    inputs = np.array([[BOS_ID, *words]])
    targets = np.array([[*words, EOS_ID]])
    return float(model.log_likelihood(inputs, targets, z[None])[0])


def test_greedy_takes_the_most_probable_word_each_step():
    model = make_model(eos_bias=1.0)
    z = np.random.default_rng(0).standard_normal((4, 3))
    sentences = generate.greedy(model, z, max_len=6)
    for row, words in enumerate(sentences):
        state = model.decoder_start(z[row : row + 1])
        for t, word in enumerate([*words, EOS_ID] if len(words) < 6 else words):
            prev = BOS_ID if t == 0 else words[t - 1]
            logp, state = model.decoder_step(np.array([prev]), state, z[row : row + 1])
            logp[:, [PAD_ID, BOS_ID]] = -np.inf
            assert int(logp.argmax()) == word


def test_outputs_are_words_only_and_respect_max_len():
    model = make_model(eos_bias=-3.0)  # </s> unlikely: sentences run to max_len
    z = np.random.default_rng(1).standard_normal((5, 3))
    for method in generate.METHODS:
        for words in generate.decode(model, z, method, rng=np.random.default_rng(0), max_len=4):
            assert len(words) <= 4
            assert not {PAD_ID, BOS_ID, EOS_ID} & set(words)


def test_beam_of_one_is_greedy():
    model = make_model(eos_bias=1.0)
    z = np.random.default_rng(2).standard_normal((6, 3))
    assert generate.beam_search(model, z, beam_width=1, max_len=8) == generate.greedy(model, z, max_len=8)


def test_a_wide_beam_finds_the_most_probable_sentence():
    """With a beam wider than the search space, beam search is exhaustive: compare with enumeration."""
    model = make_model(vocab_size=6, eos_bias=1.5)  # words: <unk>, 4, 5
    z = np.random.default_rng(3).standard_normal((3, 3))
    max_len = 4
    found = generate.beam_search(model, z, beam_width=200, max_len=max_len)
    for row in range(3):
        candidates = [list(c) for n in range(max_len + 1) for c in itertools.product((1, 4, 5), repeat=n)]
        best = max(candidates, key=lambda c: sequence_logp(model, c, z[row]))
        assert found[row] == best
        greedy_words = generate.greedy(model, z[row : row + 1], max_len)[0]
        assert sequence_logp(model, found[row], z[row]) >= sequence_logp(model, greedy_words, z[row]) - 1e-12


def test_sampling_follows_the_model_distribution():
    model = make_model(eos_bias=0.5)
    z = np.random.default_rng(4).standard_normal(3)
    first = generate.sample(model, np.tile(z, (4000, 1)), np.random.default_rng(5), max_len=1)
    logp, _ = model.decoder_step(np.array([BOS_ID]), model.decoder_start(z[None]), z[None])
    p = np.exp(logp[0])
    p[[PAD_ID, BOS_ID]] = 0
    p /= p.sum()
    counts = np.bincount([w[0] if w else EOS_ID for w in first], minlength=len(p)) / len(first)
    np.testing.assert_allclose(counts, p, atol=0.03)


def test_temperature_sharpens_and_zero_is_greedy():
    model = make_model(eos_bias=1.0)
    z = np.random.default_rng(6).standard_normal((20, 3))
    greedy = generate.greedy(model, z, 6)
    assert generate.sample(model, z, np.random.default_rng(0), temperature=0.0, max_len=6) == greedy
    cold = generate.sample(model, z, np.random.default_rng(0), temperature=0.01, max_len=6)
    hot = generate.sample(model, z, np.random.default_rng(0), temperature=5.0, max_len=6)
    assert sum(a == b for a, b in zip(cold, greedy)) >= 18
    assert sum(a == b for a, b in zip(hot, greedy)) < 10
    with pytest.raises(ValueError):
        generate.sample(model, z, np.random.default_rng(0), temperature=-1.0)


def test_same_seed_same_sentences_on_every_backend(fast_backend_name):
    z = np.random.default_rng(7).standard_normal((5, 3))
    ref = generate.sample(make_model("numpy"), z, np.random.default_rng(1), max_len=6)
    assert generate.sample(make_model("numpy"), z, np.random.default_rng(1), max_len=6) == ref
    model = make_model(fast_backend_name)
    zb = model.backend.asarray(z)
    assert generate.sample(model, zb, np.random.default_rng(1), max_len=6) == ref
    assert generate.beam_search(model, zb, 3, 6) == generate.beam_search(make_model("numpy"), z, 3, 6)


def test_unknown_method_and_bad_beam_are_refused():
    model = make_model()
    z = np.zeros((1, 3))
    with pytest.raises(ValueError, match="unknown decoding method"):
        generate.decode(model, z, "nucleus")
    with pytest.raises(ValueError):
        generate.beam_search(model, z, beam_width=0)
