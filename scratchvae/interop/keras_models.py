"""Keras 3 equivalents of scratchvae layers and models, with the weights copied over.

Keras is imported on first use, with ``KERAS_BACKEND`` defaulting to ``torch`` (set the
variable before anything imports Keras to choose another).  Every builder creates its
Keras layers in the scratchvae layer's dtype, so a float64 scratchvae layer meets a
float64 Keras layer.

Per layer::

    k = keras_layer(sv_layer)            # the Keras layer, built, weights copied
    copy_weights_to_keras(sv_layer, k)   # again after the scratchvae weights changed
    copy_weights_from_keras(k, sv_layer)

Semantics that need care (see docs/keras-semantics.md and docs/parameters.md):

* scratchvae's ``hard_sigmoid`` is Keras 2's ``clip(0.2 x + 0.5, 0, 1)``; Keras 3's own
  ``hard_sigmoid`` is ``relu6(x + 3) / 6``.  :func:`keras2_hard_sigmoid` is the Keras 2
  function as a serialisable Keras 3 activation.
* LSTMs are built with ``use_cudnn=False`` so every device runs the same generic loop.
* Keras 3.15 computes float64 ``ops.matmul`` (hence Dense, masked LSTMs, loss
  reductions) in float32 on every backend but TensorFlow; call
  :func:`enable_float64_promotion` for true float64 (the parity tests do).
"""

from __future__ import annotations

import os

import numpy as np

_KERAS = None
_HARD_SIGMOID = None


def get_keras():
    """Import Keras (``KERAS_BACKEND`` defaults to torch) and return the module."""
    global _KERAS
    if _KERAS is None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        try:
            import keras
        except ImportError:  # pragma: no cover
            raise ImportError("the Keras builders need Keras 3: pip install keras torch") from None
        _KERAS = keras
    return _KERAS


def enable_float64_promotion() -> None:
    """Make Keras keep float64 results in float64 (it demotes them to float32 on torch/JAX:
    ``keras/src/backend/common/dtypes.py`` ``BIT64_TO_BIT32_DTYPE``, like JAX without x64).
    A process-wide switch, read by Keras on every op; see docs/keras-semantics.md section 0."""
    get_keras()
    from keras.src.backend.common import dtypes

    table = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", None)
    if table is not None:  # Keras versions without the table keep float64 anyway
        table["float64"] = "float64"


def keras2_hard_sigmoid():
    """Keras 2's hard sigmoid, clip(0.2 x + 0.5, 0, 1), as a registered Keras 3 activation."""
    global _HARD_SIGMOID
    if _HARD_SIGMOID is None:
        keras = get_keras()

        @keras.saving.register_keras_serializable(package="scratchvae", name="keras2_hard_sigmoid")
        def keras2_hard_sigmoid(x):
            return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)

        _HARD_SIGMOID = keras2_hard_sigmoid
    return _HARD_SIGMOID


def keras_activation(name: str | None):
    """The Keras 3 activation equal to scratchvae's activation ``name``."""
    name = name or "linear"
    if name == "hard_sigmoid":
        return keras2_hard_sigmoid()
    if name not in ("linear", "relu", "elu", "tanh", "sigmoid"):
        raise ValueError(f"no Keras equivalent registered for activation {name!r}")
    return name


def _dtype(layer) -> str:
    return np.dtype(layer.dtype).name


# ----------------------------------------------------------------- layer builders
def keras_dense(layer, *, time_distributed: bool = False, name: str | None = None):
    """``Dense`` (or ``TimeDistributed(Dense)``) equal to a scratchvae :class:`Dense`."""
    keras = get_keras()
    dense = keras.layers.Dense(
        layer.units,
        activation=keras_activation(layer.activation),
        dtype=_dtype(layer),
        name="dense" if time_distributed else name,
    )
    if time_distributed:
        k = keras.layers.TimeDistributed(dense, dtype=_dtype(layer), name=name)
        k.build((None, None, layer.input_dim))
    else:
        k = dense
        k.build((None, layer.input_dim))
    copy_weights_to_keras(layer, k)
    return k


def keras_embedding(layer, *, name: str | None = None):
    """``Embedding`` equal to a scratchvae :class:`Embedding` (mask_zero, trainable)."""
    keras = get_keras()
    k = keras.layers.Embedding(
        layer.input_dim,
        layer.output_dim,
        mask_zero=layer.mask_zero,
        trainable=layer.trainable,
        dtype=_dtype(layer),
        name=name,
    )
    k.build((None, None))
    copy_weights_to_keras(layer, k)
    return k


def _lstm_kwargs(layer) -> dict:
    return dict(
        units=layer.units,
        return_sequences=layer.return_sequences,
        recurrent_activation=("sigmoid" if layer.recurrent_activation == "sigmoid" else keras2_hard_sigmoid()),
        zero_output_for_mask=layer.zero_output_for_mask,
        use_cudnn=False,
        dtype=_dtype(layer),
    )


def keras_lstm(layer, *, return_state: bool = False, name: str | None = None):
    """``LSTM`` equal to a scratchvae :class:`LSTM` (all options; gates i, f, c, o)."""
    keras = get_keras()
    k = keras.layers.LSTM(go_backwards=layer.go_backwards, return_state=return_state, name=name, **_lstm_kwargs(layer))
    k.build((None, None, layer.input_dim))
    copy_weights_to_keras(layer, k)
    return k


def keras_bidirectional(layer, *, name: str | None = None):
    """``Bidirectional(LSTM, merge_mode="concat")`` equal to a scratchvae :class:`Bidirectional`."""
    keras = get_keras()
    inner = keras.layers.LSTM(name="lstm", **_lstm_kwargs(layer.forward_layer))
    k = keras.layers.Bidirectional(inner, merge_mode="concat", dtype=_dtype(layer), name=name)
    k.build((None, None, layer.forward_layer.input_dim))
    copy_weights_to_keras(layer, k)
    return k


def keras_repeat_vector(layer, *, name: str | None = None):
    return get_keras().layers.RepeatVector(layer.n, dtype=_dtype(layer), name=name)


def keras_layer(layer, **kwargs):
    """The Keras equivalent of any supported scratchvae layer (dispatch on its type)."""
    from ..layers import LSTM, Bidirectional, Dense, Embedding, RepeatVector

    for cls, fn in (
        (Bidirectional, keras_bidirectional),
        (LSTM, keras_lstm),
        (Dense, keras_dense),
        (Embedding, keras_embedding),
        (RepeatVector, keras_repeat_vector),
    ):
        if isinstance(layer, cls):
            return fn(layer, **kwargs)
    raise TypeError(f"no Keras equivalent for {type(layer).__name__}")


# ----------------------------------------------------------------- weights
def keras_variables(layer, k) -> dict:
    """{scratchvae parameter name: Keras variable} for a scratchvae layer and its Keras twin."""
    keras = get_keras()
    if isinstance(k, keras.layers.TimeDistributed):
        k = k.layer
    if isinstance(k, keras.layers.Bidirectional):
        out = {}
        for side, kl in (("forward_layer", k.forward_layer), ("backward_layer", k.backward_layer)):
            out.update({f"{side}/{n}": v for n, v in keras_variables(None, kl).items()})
        return out
    if isinstance(k, keras.layers.LSTM):
        c = k.cell
        return {"kernel": c.kernel, "recurrent_kernel": c.recurrent_kernel, "bias": c.bias}
    if isinstance(k, keras.layers.Dense):
        return {"kernel": k.kernel, "bias": k.bias}
    if isinstance(k, keras.layers.Embedding):
        return {"embeddings": k.embeddings}
    raise TypeError(f"no variable mapping for Keras layer {type(k).__name__}")


def copy_weights_to_keras(layer, k) -> None:
    """Assign the scratchvae layer's parameters to the Keras layer's variables."""
    params = layer.state_dict()
    for n, v in keras_variables(layer, k).items():
        v.assign(params[n].astype(v.dtype))


def copy_weights_from_keras(k, layer) -> None:
    """Copy the Keras layer's variables into the scratchvae layer's parameters."""
    layer.load_state_dict({n: get_keras().ops.convert_to_numpy(v.value) for n, v in keras_variables(layer, k).items()})


# ----------------------------------------------------------------- models
#
# Each builder returns a Keras Functional model whose layers carry the names of the
# scratchvae layers they mirror (``/`` -> ``_``), and whose ``model.layers`` order is the
# one the model's layout in :mod:`.keras_io` declares, so ``load_weights`` accepts
# :func:`~.keras_io.export_keras_weights` files.  The noise ``eps`` is a model input, so
# Keras and scratchvae can be fed identical noise.  The models return logits: the
# softmax / sigmoid live in the losses, as in scratchvae.

_DROP_MASK = None


def _drop_mask_layer():
    """An identity layer that removes a Keras mask (for decoders that run unmasked)."""
    global _DROP_MASK
    if _DROP_MASK is None:
        keras = get_keras()

        @keras.saving.register_keras_serializable(package="scratchvae", name="DropMask")
        class DropMask(keras.layers.Layer):
            def call(self, x):
                return keras.ops.copy(x)  # a new tensor: the input's mask stays behind

            def compute_mask(self, inputs, previous_mask=None):
                return None

        _DROP_MASK = DropMask
    return _DROP_MASK


def _sample(mean, log_var, eps):
    """z = mean + exp(log_var / 2) * eps (the reparameterisation, in Keras ops)."""
    ops = get_keras().ops
    return mean + ops.exp(0.5 * log_var) * eps


def _repeat_over_time(z, like):
    """z (B, Z) -> (B, T, Z), T taken from ``like`` (B, T, ...): RepeatVector without a fixed T."""
    ops = get_keras().ops
    ones = ops.ones_like(like[:, :, :1])
    return ops.expand_dims(z, 1) * ones


def _lstm(keras, units, dtype, recurrent_activation, name, **kwargs):
    act = "sigmoid" if recurrent_activation == "sigmoid" else keras2_hard_sigmoid()
    return keras.layers.LSTM(units, recurrent_activation=act, use_cudnn=False, dtype=dtype, name=name, **kwargs)


def _bilstm(keras, units, dtype, recurrent_activation, name, **kwargs):
    return keras.layers.Bidirectional(
        _lstm(keras, units, dtype, recurrent_activation, "lstm", **kwargs), merge_mode="concat", dtype=dtype, name=name
    )


def build_keras_mnist_vae(config, *, dtype: str = "float64"):
    """The Keras twin of :class:`scratchvae.models.mnist.DenseVAE`.

    ``config``: ``DenseVAE.config()`` ({"input_dim", "hidden", "latent_dim"}) or the model.
    Inputs [x (B, D), eps (B, Z)]; outputs [logits (B, D), mean (B, Z), log_var (B, Z)].
    Loss: sum over pixels of binary_crossentropy(x, logits, from_logits=True) + KL, batch mean.
    """
    keras = get_keras()
    if hasattr(config, "config"):
        config = config.config()
    D, H, Z = config["input_dim"], config["hidden"], config["latent_dim"]
    L = keras.layers
    x = keras.Input((D,), dtype=dtype, name="x")
    eps = keras.Input((Z,), dtype=dtype, name="eps")
    h = L.Dense(H, activation="relu", dtype=dtype, name="encoder_hidden")(x)
    mean = L.Dense(Z, dtype=dtype, name="encoder_mean")(h)
    log_var = L.Dense(Z, dtype=dtype, name="encoder_log_var")(h)
    z = _sample(mean, log_var, eps)
    h = L.Dense(H, activation="relu", dtype=dtype, name="decoder_hidden")(z)
    logits = L.Dense(D, dtype=dtype, name="decoder_logits")(h)
    return keras.Model([x, eps], [logits, mean, log_var], name="mnist_vae")


def build_keras_imdb_vae(config, *, steps: int | None = None, dtype: str = "float64"):
    """The Keras twin of :class:`scratchvae.models.imdb.IMDBVAE` (config: ``IMDBVAEConfig``).

    Inputs [ids (B, T) int, eps (B, Z)] (eps = 0 gives z = z_mean); outputs
    [logits (B, T, V), z_mean, z_log_var (B, Z), sentiment logit (B, 1)].
    The padding mask of the embedding (ids != 0) reaches the encoders by Keras mask
    propagation and is passed explicitly to both decoder LSTMs, as scratchvae does.
    The decoder input repeats z over the T steps: ``RepeatVector(steps)`` when ``steps``
    is given (the tutorial's fixed length), else a broadcast to the length of ``ids``.
    Loss: reconstruction = SparseCategoricalCrossentropy(from_logits, reduction="sum")
    with the mask as sample weight, / B; + kl_weight * KL + sentiment_weight * BCE.
    """
    keras = get_keras()
    c = config
    L, ops = keras.layers, keras.ops
    act = c.recurrent_activation
    ids = keras.Input((steps,), dtype="int64", name="ids")
    eps = keras.Input((c.latent_dim,), dtype=dtype, name="eps")
    x = L.Embedding(c.vocab_size, c.embedding_dim, mask_zero=True, dtype=dtype, name="embedding")(ids)
    h = _bilstm(keras, c.encoder_units, dtype, act, "encoder_0", return_sequences=True)(x)
    h = _bilstm(keras, c.encoder_units, dtype, act, "encoder_1")(h)
    h = L.Dense(c.hidden_units, activation="relu", dtype=dtype, name="hidden")(h)
    mean = L.Dense(c.latent_dim, dtype=dtype, name="z_mean")(h)
    log_var = L.Dense(c.latent_dim, dtype=dtype, name="z_log_var")(h)
    z = _sample(mean, log_var, eps)
    mask = ops.not_equal(ids, 0)
    r = L.RepeatVector(steps, dtype=dtype)(z) if steps else _repeat_over_time(z, x)
    d = _lstm(keras, c.decoder_units, dtype, act, "decoder_0", return_sequences=True)(r, mask=mask)
    d = _lstm(keras, c.decoder_units, dtype, act, "decoder_1", return_sequences=True)(d, mask=mask)
    logits = L.TimeDistributed(L.Dense(c.vocab_size, dtype=dtype, name="dense"), dtype=dtype, name="output")(d)
    s = L.Dense(c.sentiment_units, dtype=dtype, name="sentiment_hidden")(z)
    s = L.Dense(1, dtype=dtype, name="sentiment_output")(s)
    return keras.Model([ids, eps], [logits, mean, log_var, s], name="imdb_vae")


def build_keras_sentence_vae(config, *, dtype: str = "float64"):
    """The Keras twin of :class:`scratchvae.models.sentence.SentenceVAE` (``SentenceVAEConfig``).

    Inputs [encoder_ids (B, T) int, decoder_ids (B, T) int, eps (B, Z)]; outputs
    [logits (B, T, V), mean, logvar (B, Z)].  One Embedding layer serves both id arrays.
    The encoder is masked at padding (the embedding's mask); the decoder runs unmasked
    from the initial state Dense(z) (h0, or [h0 | c0]), as scratchvae's does.
    Loss: reconstruction of the targets (padding weight 0) summed per sentence, batch mean,
    + kl_weight * KL (free bits: sum over units of max(batch-mean KL, free_bits)).
    ``decoder_dropout`` is left out: it has no weights and is the identity outside training.
    """
    keras = get_keras()
    c = config
    L, ops = keras.layers, keras.ops
    act = c.recurrent_activation
    enc_ids = keras.Input((None,), dtype="int64", name="encoder_ids")
    dec_ids = keras.Input((None,), dtype="int64", name="decoder_ids")
    eps = keras.Input((c.latent_dim,), dtype=dtype, name="eps")
    embedding = L.Embedding(
        c.vocab_size, c.embedding_dim, mask_zero=True, trainable=c.train_embeddings, dtype=dtype, name="embedding"
    )
    if c.bidirectional:
        encoder = _bilstm(keras, c.encoder_units, dtype, act, "encoder")
    else:
        encoder = _lstm(keras, c.encoder_units, dtype, act, "encoder")
    e = encoder(embedding(enc_ids))
    mean = L.Dense(c.latent_dim, dtype=dtype, name="to_mean")(e)
    log_var = L.Dense(c.latent_dim, dtype=dtype, name="to_logvar")(e)
    z = _sample(mean, log_var, eps)
    u = c.decoder_units
    state_size = u * (2 if c.init_state == "hc" else 1)
    s = L.Dense(state_size, activation=c.init_activation, dtype=dtype, name="to_state")(z)
    state = [s[:, :u], s[:, u:]] if c.init_state == "hc" else [s, ops.zeros_like(s)]
    x = _drop_mask_layer()(dtype=dtype, name="unmasked")(embedding(dec_ids))
    if c.z_every_step:
        x = ops.concatenate([x, _repeat_over_time(z, x)], axis=-1)
    h = _lstm(keras, u, dtype, act, "decoder", return_sequences=True)(x, initial_state=state)
    logits = L.TimeDistributed(L.Dense(c.vocab_size, dtype=dtype, name="dense"), dtype=dtype, name="output")(h)
    return keras.Model([enc_ids, dec_ids, eps], [logits, mean, log_var], name="sentence_vae")


def keras_h5_groups(model) -> dict:
    """{h5 group: Keras layer} of a Functional model, named as Keras's weight files name
    them (``layers/<snake_case class>[_n]`` in ``model.layers`` order)."""
    from .keras_io import to_snake_case

    used: dict[str, int] = {}
    out = {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        if base in used:
            used[base] += 1
            name = f"{base}_{used[base]}"
        else:
            used[base] = 0
            name = base
        out[f"layers/{name}"] = layer
    return out


def keras_model_variables(model, layout) -> dict:
    """{scratchvae parameter path: Keras variable} of a Keras model built for ``layout``."""
    by_path = {v.path: v for v in model.weights}
    out = {}
    for p, kpath in layout.keras_variable_paths().items():
        if kpath not in by_path:
            raise KeyError(f"Keras model has no variable {kpath!r} (for {p!r}); it has {sorted(by_path)}")
        out[p] = by_path[kpath]
    return out
