"""The sentence VAE: gradients, masking, the single-step decoder, embeddings, backends and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import get_backend
from scratchvae.data.reserved import PAD_ID
from scratchvae.gradcheck import CASES, TOLERANCE, check_problem, load_model_cases
from scratchvae.models.sentence import SentenceVAE, SentenceVAEConfig

load_model_cases()
MODEL_CASES = sorted(name for name in CASES if name.startswith("SentenceVAE"))


def make_model(backend="numpy", dtype=np.float64, seed=0, **options):
    config = SentenceVAEConfig(
        **{**dict(vocab_size=9, embedding_dim=5, encoder_units=6, decoder_units=7, latent_dim=3), **options}
    )
    return SentenceVAE(config, rng=np.random.default_rng(seed), backend=backend, dtype=dtype)


def make_batch(rng, lengths=(4, 2, 6, 1), vocab_size=9, pad_to=None):
    """Decoder inputs <s> w.. and targets w.. </s> of sentences of the given numbers of words."""
    T = max(lengths) + 1 if pad_to is None else pad_to
    inputs, targets = np.zeros((len(lengths), T), np.int64), np.zeros((len(lengths), T), np.int64)
    for row, n in enumerate(lengths):
        words = rng.integers(4, vocab_size, n)
        inputs[row, : n + 1] = [2, *words]
        targets[row, : n + 1] = [*words, 3]
    return inputs, targets


def loss_and_grads(model, inputs, targets, eps, beta=0.5):
    B = model.backend
    model.zero_grad()
    t = B.asarray(targets)
    loss = model.forward(t, B.asarray(inputs), B.asarray(eps, dtype=model.dtype), kl_weight=beta)["loss"]
    model.backward()
    return loss, {k: B.to_numpy(v).copy() for k, v in model.gradients().items()}


def test_the_model_registers_gradient_checks():
    assert len(MODEL_CASES) >= 3


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_gradients_match_finite_differences(name):
    result = check_problem(name, CASES[name]("numpy", "float64", np.random.default_rng(0)))
    assert result.max_error < TOLERANCE, result.errors


def test_loss_is_reconstruction_plus_weighted_kl():
    rng = np.random.default_rng(1)
    model = make_model()
    inputs, targets = make_batch(rng)
    eps = rng.standard_normal((4, 3))
    terms = model.forward(targets, inputs, eps, kl_weight=0.3)
    assert all(type(value) is float for value in terms.values())
    assert terms["rec"] > 0 and terms["kl"] > 0
    assert terms["loss"] == pytest.approx(terms["rec"] + 0.3 * terms["kl"])
    # the same z gives the same reconstruction through log_likelihood
    mean, logvar = model.encode(targets)
    z = mean + np.exp(0.5 * logvar) * eps
    assert -model.log_likelihood(inputs, targets, z).mean() == pytest.approx(terms["rec"], rel=1e-12)


def test_padding_changes_nothing():
    """Extra padding columns leave the loss and every gradient unchanged (masking is right)."""
    rng = np.random.default_rng(2)
    inputs, targets = make_batch(rng)
    eps = rng.standard_normal((4, 3))
    padded = [np.pad(a, ((0, 0), (0, 4))) for a in (inputs, targets)]
    for options in (dict(), dict(bidirectional=True, z_every_step=True)):
        model = make_model(**options)
        loss, grads = loss_and_grads(model, inputs, targets, eps)
        loss_p, grads_p = loss_and_grads(model, *padded, eps)
        assert loss_p == pytest.approx(loss, rel=1e-12)
        for k in grads:
            np.testing.assert_allclose(grads_p[k], grads[k], rtol=1e-10, atol=1e-14)


def test_a_sentence_does_not_depend_on_its_batch_mates():
    rng = np.random.default_rng(3)
    model = make_model(bidirectional=True)
    inputs, targets = make_batch(rng)
    mean, _ = model.encode(targets)
    mean_alone, _ = model.encode(targets[1:2, :3])
    np.testing.assert_allclose(mean_alone[0], mean[1], rtol=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(z_every_step=True, init_state="h", init_activation="linear"),
        dict(embedding_dim=7, tie_embeddings=True),
    ],
)
def test_step_by_step_decoding_equals_teacher_forcing(options):
    """decoder_step on T=1 sequences reproduces the teacher-forced log-likelihood exactly."""
    rng = np.random.default_rng(4)
    model = make_model(**options)
    inputs, targets = make_batch(rng, lengths=(5, 5, 5))
    z = rng.standard_normal((3, 3))
    state = model.decoder_start(z)
    total = np.zeros(3)
    for t in range(inputs.shape[1]):
        logp, state = model.decoder_step(inputs[:, t], state, z)
        np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
        total += logp[np.arange(3), targets[:, t]]
    np.testing.assert_allclose(total, model.log_likelihood(inputs, targets, z), rtol=1e-12)


def test_decoder_initial_state_comes_from_z():
    model = make_model(init_state="h")
    z = np.random.default_rng(5).standard_normal((2, 3))
    h0, c0 = model.decoder_start(z)
    W, b = model.to_state.params["kernel"], model.to_state.params["bias"]
    np.testing.assert_allclose(h0, np.tanh(z @ W + b))
    assert not c0.any()
    h0, c0 = make_model(init_state="hc").decoder_start(z)
    assert h0.shape == c0.shape == (2, 7) and c0.any()


def test_pretrained_embeddings_are_loaded_and_can_be_frozen():
    rng = np.random.default_rng(6)
    weights = rng.standard_normal((9, 5))
    config = SentenceVAEConfig(
        vocab_size=9, embedding_dim=5, encoder_units=4, decoder_units=4, latent_dim=2, train_embeddings=False
    )
    model = SentenceVAE(config, embedding_weights=weights, rng=rng, dtype=np.float64)
    np.testing.assert_array_equal(model.embedding.params["embeddings"], weights)
    inputs, targets = make_batch(rng)
    _, grads = loss_and_grads(model, inputs, targets, rng.standard_normal((4, 2)))
    assert not grads["embedding/embeddings"].any()  # frozen: no gradient, so no update
    assert grads["decoder/kernel"].any()
    with pytest.raises(ValueError, match="shape"):
        SentenceVAE(config, embedding_weights=weights[:, :3], rng=rng)


def test_the_padding_row_gets_no_gradient():
    rng = np.random.default_rng(7)
    model = make_model()
    inputs, targets = make_batch(rng)
    _, grads = loss_and_grads(model, inputs, targets, rng.standard_normal((4, 3)))
    assert not grads["embedding/embeddings"][PAD_ID].any()


def test_free_bits_stop_pushing_units_below_the_threshold():
    rng = np.random.default_rng(8)
    inputs, targets = make_batch(rng)
    eps = rng.standard_normal((4, 3))
    model = make_model(free_bits=100.0)  # every unit below the threshold
    terms = model.forward(targets, inputs, eps, kl_weight=1.0)
    assert terms["kl_term"] == pytest.approx(3 * 100.0)  # the constant threshold per unit
    # the KL then contributes no gradient: the encoder's only gradient is through z
    model.zero_grad()
    model.forward(targets, inputs, np.zeros((4, 3)), kl_weight=1.0)
    model.backward()
    assert not model.to_logvar.grads["kernel"].any()  # eps = 0: z does not depend on logvar
    model = make_model(free_bits=0.0)  # without free bits the KL pulls logvar
    model.forward(targets, inputs, np.zeros((4, 3)), kl_weight=1.0)
    model.backward()
    assert model.to_logvar.grads["kernel"].any()


def test_numba_agrees_with_numpy(fast_backend_name):
    rng = np.random.default_rng(9)
    inputs, targets = make_batch(rng)
    eps = rng.standard_normal((4, 3))
    ref = loss_and_grads(make_model("numpy", bidirectional=True, z_every_step=True), inputs, targets, eps)
    other = loss_and_grads(make_model(fast_backend_name, bidirectional=True, z_every_step=True), inputs, targets, eps)
    assert other[0] == pytest.approx(ref[0], rel=1e-12)
    for k in ref[1]:
        np.testing.assert_allclose(other[1][k], ref[1][k], rtol=1e-9, atol=1e-12)


def test_float32_trains_and_matches_float64():
    rng = np.random.default_rng(10)
    inputs, targets = make_batch(rng)
    eps = rng.standard_normal((4, 3))
    loss64, grads64 = loss_and_grads(make_model(dtype=np.float64), inputs, targets, eps)
    model32 = make_model(dtype=np.float32)
    loss32, grads32 = loss_and_grads(model32, inputs, targets, eps)
    assert all(g.dtype == np.float32 for g in grads32.values())
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for k in grads64:
        np.testing.assert_allclose(grads32[k], grads64[k], rtol=1e-3, atol=1e-5)


def test_a_few_adam_steps_fit_a_tiny_corpus():
    from scratchvae.optim import Adam

    rng = np.random.default_rng(11)
    model = make_model(seed=1)
    opt = Adam(model.parameters(), model.gradients(), learning_rate=0.02)
    inputs, targets = make_batch(rng, lengths=(3, 5, 2, 4))
    first = None
    for _ in range(60):
        model.zero_grad()
        terms = model.forward(targets, inputs, rng.standard_normal((4, 3)), kl_weight=0.1)
        model.backward()
        opt.step()
        first = terms["loss"] if first is None else first
    assert terms["rec"] < 0.3 * first


def test_tied_embeddings_share_one_table_for_input_and_output():
    """The output layer's weights are the embedding table: no output kernel of its own, the
    logits are h E^T + b, the table's gradient is the sum of its input and output parts (the
    finite-difference case checks its value), and a frozen table stays frozen."""
    rng = np.random.default_rng(8)
    tied, untied = make_model(embedding_dim=7, tie_embeddings=True), make_model(embedding_dim=7)
    assert "output/kernel" not in tied.parameters() and "output/bias" in tied.parameters()
    assert untied.num_parameters() - tied.num_parameters() == 7 * 9
    h = rng.standard_normal((2, 3, 7))
    E, b = tied.embedding.params["embeddings"], tied.output.params["bias"]
    np.testing.assert_allclose(tied.output.forward(h), h @ E.T + b, rtol=1e-12)
    inputs, targets = make_batch(rng)
    _, grads = loss_and_grads(tied, inputs, targets, rng.standard_normal((4, 3)))
    assert grads["embedding/embeddings"][1].any()  # <unk>: never an input here, but scored at the output

    frozen = make_model(embedding_dim=7, tie_embeddings=True, train_embeddings=False)
    _, grads = loss_and_grads(frozen, inputs, targets, rng.standard_normal((4, 3)))
    assert not grads["embedding/embeddings"].any() and grads["output/bias"].any()
    with pytest.raises(ValueError, match="embedding_dim == decoder_units, got 5 and 7"):
        make_model(tie_embeddings=True)


def test_config_round_trips_and_checks_its_values():
    c = SentenceVAEConfig(vocab_size=10, bidirectional=True)
    assert SentenceVAEConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError):
        SentenceVAEConfig(vocab_size=10, init_state="c")
    with pytest.raises(ValueError):
        SentenceVAEConfig(vocab_size=10, init_activation="relu")
    with pytest.raises(ValueError):
        SentenceVAEConfig(vocab_size=0)
    with pytest.raises(ValueError, match="decoder_dropout"):
        SentenceVAEConfig(vocab_size=10, decoder_dropout=1.0)
    assert get_backend("numpy") is make_model().backend


def test_decoder_dropout_acts_in_training_only():
    """Without rng the model with decoder_dropout computes exactly what the model without it
    does; with rng, inputs and outputs of the decoder are masked at about the rate and the
    kept values scaled by 1 / (1 - p).  (Its gradients: the finite-difference case above.)"""
    rng = np.random.default_rng(3)
    inputs, targets = make_batch(rng, lengths=(30, 25, 28, 20))
    eps = rng.standard_normal((4, 3))
    plain, dropped = make_model(), make_model(decoder_dropout=0.5)
    plain_loss = plain.forward(targets, inputs, eps)["loss"]
    assert dropped.forward(targets, inputs, eps)["loss"] == plain_loss
    loss = dropped.forward(targets, inputs, eps, rng=np.random.default_rng(0))["loss"]
    assert loss != plain_loss
    for layer, shape in ((dropped.dropout_in, (4, 31, 5)), (dropped.dropout_out, (4, 31, 7))):
        assert layer.scale.shape == shape
        assert set(np.unique(layer.scale)) == {0.0, 2.0}
        assert 0.4 < (layer.scale == 0).mean() < 0.6
    same = dropped.forward(targets, inputs, eps, rng=np.random.default_rng(0))["loss"]
    assert same == loss  # the masks come from the generator alone
