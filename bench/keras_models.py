"""The benchmarked models and kernels in Keras 3 (torch backend): the second anchor.

The models are the Keras twins from :mod:`scratchvae.interop.keras_models` (the ones the
parity tests hold to scratchvae's outputs and gradients), built in float32.  A training
step is what Keras's own torch trainer does in ``train_step``: call the model, compute
the loss with Keras ops, ``zero_grad``, ``loss.backward()``, ``optimizer.apply``.
Those twins build their LSTMs with ``use_cudnn=False`` (the generic loop, as on a CPU);
the kernel benchmark uses Keras's default LSTM.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import ops  # noqa: E402

from scratchvae.interop.keras_models import (
    build_keras_imdb_vae,
    build_keras_mnist_vae,  # noqa: E402
    build_keras_sentence_vae,
)

if keras.backend.backend() != "torch":  # pragma: no cover
    raise ImportError(f"the Keras anchor needs KERAS_BACKEND=torch, not {keras.backend.backend()}")


def _t(a, dtype):
    return ops.convert_to_tensor(np.ascontiguousarray(a), dtype=dtype)


def _kl(mean, logvar):
    return ops.mean(ops.sum(-0.5 * (1.0 + logvar - mean * mean - ops.exp(logvar)), axis=1))


def _reconstruction(targets, logits, weights):
    nll = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    return ops.sum(nll * weights) / targets.shape[0]


def _train_step(model, loss_fn, make_inputs):
    """keras/src/backend/torch/trainer.py ``train_step``, without the metrics."""
    optimizer = keras.optimizers.Adam(1e-3)
    variables = model.trainable_variables
    optimizer.build(variables)

    def step():
        loss = loss_fn(*make_inputs())
        model.zero_grad()
        loss.backward()
        grads = [v.value.grad for v in variables]
        with torch.no_grad():
            optimizer.apply(grads, variables)

    return step


def imdb_step(config, ids, labels, rng):
    n, T = ids.shape
    model = build_keras_imdb_vae(config, steps=T, dtype="float32")
    ids_t, labels_t = _t(ids, "int64"), _t(labels[:, None], "float32")
    weights = ops.cast(ops.not_equal(ids_t, 0), "float32")

    def loss_fn(eps):
        logits, mean, logvar, s = model([ids_t, eps], training=True)
        bce = ops.mean(keras.losses.binary_crossentropy(labels_t, s, from_logits=True))
        return _reconstruction(ids_t, logits, weights) + _kl(mean, logvar) + bce

    Z, s = config.latent_dim, config.epsilon_std
    return _train_step(model, loss_fn, lambda: (_t(rng.standard_normal((n, Z)) * s, "float32"),))


def sentence_step(config, encoder_ids, decoder_ids, targets, rng):
    model = build_keras_sentence_vae(config, dtype="float32")
    e, d, t = (_t(a, "int64") for a in (encoder_ids, decoder_ids, targets))
    weights = ops.cast(ops.not_equal(t, 0), "float32")

    def loss_fn(eps):
        logits, mean, logvar = model([e, d, eps], training=True)
        return _reconstruction(t, logits, weights) + _kl(mean, logvar)

    n, Z = targets.shape[0], config.latent_dim
    return _train_step(model, loss_fn, lambda: (_t(rng.standard_normal((n, Z)), "float32"),))


def mnist_step(dims, x, rng):
    d, h, z = dims
    model = build_keras_mnist_vae({"input_dim": d, "hidden": h, "latent_dim": z}, dtype="float32")
    xt = _t(x, "float32")

    def loss_fn(eps):
        logits, mean, logvar = model([xt, eps], training=True)
        bce = keras.losses.binary_crossentropy(xt, logits, from_logits=True)  # mean over pixels
        return ops.mean(bce) * d + _kl(mean, logvar)

    return _train_step(model, loss_fn, lambda: (_t(rng.standard_normal((len(x), z)), "float32"),))


# ---------------------------------------------------------------------- kernels
def lstm_step(x, dy, units):
    """keras.layers.LSTM(return_sequences=True) forward over x (B, T, D), backward from dy."""
    layer = keras.layers.LSTM(units, return_sequences=True, dtype="float32")
    layer.build((None, None, x.shape[2]))
    xt = _t(x, "float32").requires_grad_()
    dyt = _t(dy, "float32")

    def step():
        layer.zero_grad()
        xt.grad = None
        layer(xt).backward(dyt)

    return step


def softmax_ce_step(logits, targets, scale):
    """sparse_categorical_crossentropy(from_logits=True), weighted sum, backward to the logits."""
    lt = _t(logits, "float32").requires_grad_()
    tt, st = _t(targets, "int64"), _t(scale, "float32")

    def step():
        lt.grad = None
        ops.sum(keras.losses.sparse_categorical_crossentropy(tt, lt, from_logits=True) * st).backward()

    return step
