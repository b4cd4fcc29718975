"""Keras 3 ``.weights.h5`` interchange: export -> Keras load_weights -> same predictions;
Keras save_weights -> import -> identical parameters; export -> import round trip."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("h5py")

from keras_reference import N, T, assert_out, keras, rng_from, token_ids  # noqa: E402

from scratchvae.interop import (
    KerasInteropError,
    default_layout,
    export_keras_weights,  # noqa: E402
    functional_layout,
    import_keras_weights,
    read_keras_weights,
)
from scratchvae.interop.keras_models import keras_layer  # noqa: E402
from scratchvae.layers import LSTM, Bidirectional, Dense, Embedding, Layer  # noqa: E402

F64 = np.float64
V, E, U, Z, STEPS = 9, 3, 4, 2, 5


class TinySeqModel(Layer):
    """Embedding -> Bidirectional LSTM -> Dense (latent) -> LSTM.forward_repeated -> TimeDistributed Dense."""

    def __init__(self, rng, dtype=F64, recurrent_activation="sigmoid"):
        super().__init__(dtype=dtype, name="tiny")
        kw = dict(rng=rng, dtype=dtype)
        self.embedding = self.add_child("embedding", Embedding(V, E, mask_zero=True, **kw))
        self.encoder = self.add_child("encoder", Bidirectional(E, U, recurrent_activation=recurrent_activation, **kw))
        self.latent = self.add_child("latent", Dense(2 * U, Z, "tanh", **kw))
        self.decoder = self.add_child(
            "decoder", LSTM(Z, U, return_sequences=True, recurrent_activation=recurrent_activation, **kw)
        )
        self.output = self.add_child("output", Dense(U, V, **kw))
        for _, p, _ in self.named_parameters():  # nonzero biases too
            p[...] += rng.standard_normal(p.shape) * 0.1

    def forward(self, ids):
        h = self.encoder.forward(self.embedding.forward(ids), self.embedding.compute_mask(ids))
        z = self.latent.forward(h)
        return self.output.forward(self.decoder.forward_repeated(z, STEPS))

    def keras_layout(self):
        # (kind, scratchvae layer, Keras layer name), in keras_tiny's model.layers order
        return functional_layout(
            [
                ("embedding", "embedding", "embedding"),
                ("bidirectional", "encoder", "encoder"),
                ("dense", "latent", "latent"),
                ("lstm", "decoder", "decoder"),
                ("time_distributed", "output", "output"),
            ]
        )


def keras_tiny(model, time_distributed=True):
    """The Keras twin of TinySeqModel, built from the per-layer builders."""
    ids = keras.Input((STEPS,), dtype="int64")
    h = keras_layer(model.embedding, name="embedding")(ids)
    h = keras_layer(model.encoder, name="encoder")(h)
    z = keras_layer(model.latent, name="latent")(h)
    r = keras.layers.RepeatVector(STEPS)(z)
    d = keras_layer(model.decoder, name="decoder")(r)
    y = keras_layer(model.output, time_distributed=time_distributed, name="output")(d)
    return keras.Model(ids, y)


def _scramble(km):
    """Overwrite every Keras weight, so a later load_weights must put them all back."""
    for v in km.weights:
        v.assign(np.full(tuple(v.shape), 0.123))


@pytest.fixture
def tiny(tmp_path):
    rng = rng_from(0)
    model = TinySeqModel(rng)
    mask = rng.random((3, STEPS)) < 0.8
    mask[:, 0] = True
    ids = token_ids(rng, 3, STEPS, V, mask)
    return model, ids, tmp_path


def test_export_then_keras_predicts_the_same(tiny):
    model, ids, tmp = tiny
    km = keras_tiny(model)
    _scramble(km)
    export_keras_weights(model, tmp / "tiny.weights.h5")
    km.load_weights(tmp / "tiny.weights.h5")
    assert_out(model.forward(ids), N(km(T(ids))), "prediction after Keras load_weights", "h5 export -> Keras")


def test_export_matches_keras_file_structure(tiny):
    h5py = pytest.importorskip("h5py")
    model, _, tmp = tiny
    km = keras_tiny(model)
    km.save_weights(tmp / "keras.weights.h5")
    export_keras_weights(model, tmp / "ours.weights.h5")

    def datasets(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda n, o: out.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
        return out

    assert datasets(tmp / "ours.weights.h5") == datasets(tmp / "keras.weights.h5")

    def names(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(
                lambda n, o: (
                    out.__setitem__(n, o.attrs["name"])
                    if n.endswith("vars") and "name" in o.attrs and n != "vars"
                    else None
                )
            )
        return out

    ours, theirs = names(tmp / "ours.weights.h5"), names(tmp / "keras.weights.h5")
    assert ours and {g: theirs.get(g) for g in ours} == ours


def test_import_ignores_optimizer_state_of_compiled_model(tiny):
    """A compiled Keras model's save_weights also writes optimizer/vars/*: import skips it."""
    model, _, tmp = tiny
    km = keras_tiny(model)
    km.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    km.optimizer.build(km.trainable_variables)
    km.save_weights(tmp / "compiled.weights.h5")
    fresh = TinySeqModel(rng_from(11))
    import_keras_weights(fresh, tmp / "compiled.weights.h5")
    for p, a in model.parameters().items():
        np.testing.assert_array_equal(fresh.parameters()[p], a, err_msg=p)


def test_keras_file_imports_identically(tiny):
    model, ids, tmp = tiny
    km = keras_tiny(model)
    rng = rng_from(1)
    for v in km.weights:  # weights that scratchvae has never seen
        v.assign(rng.standard_normal(tuple(v.shape)))
    km.save_weights(tmp / "keras.weights.h5")
    fresh = TinySeqModel(rng_from(2))
    import_keras_weights(fresh, tmp / "keras.weights.h5")
    by_path = {v.path: N(v) for v in km.weights}
    for p, kpath in fresh.keras_layout().keras_variable_paths().items():
        np.testing.assert_array_equal(fresh.parameters()[p], by_path[kpath], err_msg=p)
    assert_out(fresh.forward(ids), N(km(T(ids))), "prediction after import", "h5 Keras -> import")


def test_round_trip_is_exact(tiny):
    model, _, tmp = tiny
    export_keras_weights(model, tmp / "a.weights.h5")
    fresh = TinySeqModel(rng_from(5))
    import_keras_weights(fresh, tmp / "a.weights.h5")
    for p, a in model.parameters().items():
        np.testing.assert_array_equal(fresh.parameters()[p], a, err_msg=p)


def test_float32_model_loads_into_float64_keras(tiny):
    model, ids, tmp = tiny
    m32 = TinySeqModel(rng_from(0), dtype=np.float32)
    m32.load_state_dict(model.state_dict())
    export_keras_weights(m32, tmp / "f32.weights.h5")
    km = keras_tiny(model)
    _scramble(km)
    km.load_weights(tmp / "f32.weights.h5")
    for v in km.weights:
        assert N(v).dtype == F64
    expected = {p: a.astype(np.float32).astype(F64) for p, a in model.parameters().items()}
    got = read_keras_weights(tmp / "f32.weights.h5", model.keras_layout())
    for p in expected:
        np.testing.assert_array_equal(got[p], expected[p])


def test_hard_sigmoid_model_round_trip(tiny):
    """The Keras 2 recurrent activation survives Bidirectional's config round trip."""
    _, ids, tmp = tiny
    model = TinySeqModel(rng_from(7), recurrent_activation="hard_sigmoid")
    km = keras_tiny(model)
    _scramble(km)
    export_keras_weights(model, tmp / "hs.weights.h5")
    km.load_weights(tmp / "hs.weights.h5")
    assert_out(model.forward(ids), N(km(T(ids))), "hard_sigmoid model", "h5 export -> Keras")


def test_default_layout_follows_parameter_order(tmp_path):
    """Without a declared layout: parametrised layers in parameter order (Dense on 3D
    inputs maps to a plain Keras Dense, which Keras applies to the last axis)."""
    rng = rng_from(3)
    model = Layer(dtype=F64, name="chain")
    lstm = model.add_child("rnn", LSTM(3, 4, return_sequences=True, rng=rng, dtype=F64))
    d1 = model.add_child("hidden", Dense(4, 5, "relu", rng=rng, dtype=F64))
    d2 = model.add_child("out", Dense(5, 2, rng=rng, dtype=F64))
    layout = default_layout(model)
    assert [e.group for e in layout.entries] == ["layers/lstm", "layers/dense", "layers/dense_1"]
    x = rng.standard_normal((2, 6, 3))
    inp = keras.Input((6, 3))
    km = keras.Model(inp, keras_layer(d2)(keras_layer(d1)(keras_layer(lstm)(inp))))
    _scramble(km)
    export_keras_weights(model, tmp_path / "chain.weights.h5")
    km.load_weights(tmp_path / "chain.weights.h5")
    assert_out(d2.forward(d1.forward(lstm.forward(x))), N(km(T(x))), "chain", "h5 export -> Keras")


def test_errors(tiny):
    h5py = pytest.importorskip("h5py")
    model, _, tmp = tiny
    with pytest.raises(KerasInteropError, match="weights.h5"):
        export_keras_weights(model, tmp / "x.h5")
    export_keras_weights(model, tmp / "a.weights.h5")
    # a layout that forgets a layer
    short = functional_layout([("embedding", "embedding"), ("bidirectional", "encoder")])
    with pytest.raises(KerasInteropError, match="without a Keras variable"):
        import_keras_weights(model, tmp / "a.weights.h5", layout=short)
    # a file of another shape
    other = TinySeqModel(rng_from(1))
    other.children["output"] = Dense(U, V + 1, rng=rng_from(1), dtype=F64)
    export_keras_weights(other, tmp / "b.weights.h5")
    with pytest.raises(KerasInteropError, match="shape"):
        import_keras_weights(model, tmp / "b.weights.h5")
    # a file with weights the layout does not know
    with h5py.File(tmp / "a.weights.h5", "a") as f:
        f["layers/dense_1/vars/0"] = np.zeros((2, 2))
    with pytest.raises(KerasInteropError, match="another model"):
        import_keras_weights(model, tmp / "a.weights.h5")


def test_missing_h5py_message(tiny, monkeypatch):
    model, _, tmp = tiny
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        export_keras_weights(model, tmp / "a.weights.h5")


# ----------------------------------------------------------------- the project's models
def _ids(rng, n=3, steps=5):
    m = rng.random((n, steps)) < 0.8
    m[:, 0] = True
    return token_ids(rng, n, steps, 8, m)


def _model_case(name):
    """(scratchvae model factory(seed), Keras builder(model), inputs(rng), logits(model, inputs))."""
    from scratchvae.interop.keras_models import build_keras_imdb_vae, build_keras_mnist_vae, build_keras_sentence_vae

    module = pytest.importorskip(f"scratchvae.models.{name}")
    if name == "mnist":

        def logits(m, x):
            mean, log_var = m.encode(x[0])
            return m.decoder.forward(mean + np.exp(0.5 * log_var) * x[1])

        return (
            lambda s: module.DenseVAE(6, 4, 2, rng=rng_from(s), dtype=F64),
            lambda m: build_keras_mnist_vae(m.config()),
            lambda rng: [rng.random((3, 6)), rng.standard_normal((3, 2))],
            logits,
        )
    if name == "imdb":
        cfg = module.IMDBVAEConfig(
            vocab_size=8,
            embedding_dim=3,
            encoder_units=2,
            hidden_units=3,
            latent_dim=2,
            decoder_units=3,
            sentiment_units=2,
            recurrent_activation="hard_sigmoid",
        )
        return (
            lambda s: module.IMDBVAE(cfg, rng=rng_from(s), dtype=F64),
            lambda m: build_keras_imdb_vae(m.config),
            lambda rng: [_ids(rng), np.zeros((3, 2))],
            lambda m, x: m._decode(m.encode(x[0]), x[0] != 0),
        )
    cfg = module.SentenceVAEConfig(
        vocab_size=8,
        embedding_dim=3,
        encoder_units=2,
        decoder_units=3,
        latent_dim=2,
        bidirectional=True,
        z_every_step=True,
    )

    def logits(m, x):
        mean, logvar = m.encode(x[0])
        return m._decode(m.embedding.forward(x[1]), mean + np.exp(0.5 * logvar) * x[2])

    return (
        lambda s: module.SentenceVAE(cfg, rng=rng_from(s), dtype=F64),
        lambda m: build_keras_sentence_vae(m.config),
        lambda rng: [_ids(rng), _ids(rng), rng.standard_normal((3, 2))],
        logits,
    )


@pytest.mark.parametrize("name", ["mnist", "imdb", "sentence"])
def test_model_round_trip(name, tmp_path):
    make, build, inputs, predict = _model_case(name)
    model = make(0)
    for _, p, _ in model.named_parameters():
        p[...] += rng_from(9).standard_normal(p.shape) * 0.1
    x = inputs(rng_from(1))

    # export -> Keras load_weights -> Keras predicts what scratchvae predicts
    km = build(model)
    _scramble(km)
    export_keras_weights(model, tmp_path / "m.weights.h5")
    km.load_weights(tmp_path / "m.weights.h5")
    assert_out(
        predict(model, x), N(km([T(a) for a in x])[0]), f"{name} logits after load_weights", "h5 export -> Keras"
    )

    # Keras save_weights -> import -> parameters identical to the Keras variables
    rng = rng_from(2)
    for v in km.weights:
        v.assign(rng.standard_normal(tuple(v.shape)) * 0.3)
    km.save_weights(tmp_path / "k.weights.h5")
    fresh = make(3)
    import_keras_weights(fresh, tmp_path / "k.weights.h5")
    from scratchvae.interop import layout_of
    from scratchvae.interop.keras_models import keras_model_variables

    for p, v in keras_model_variables(km, layout_of(fresh)).items():
        np.testing.assert_array_equal(fresh.parameters()[p], N(v), err_msg=p)
    assert_out(predict(fresh, x), N(km([T(a) for a in x])[0]), f"{name} logits after import", "h5 Keras -> import")

    # export -> import: identical parameters
    export_keras_weights(fresh, tmp_path / "again.weights.h5")
    again = make(4)
    import_keras_weights(again, tmp_path / "again.weights.h5")
    for p, a in fresh.parameters().items():
        np.testing.assert_array_equal(again.parameters()[p], a, err_msg=p)
