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
    dense = keras.layers.Dense(layer.units, activation=keras_activation(layer.activation),
                               dtype=_dtype(layer), name="dense" if time_distributed else name)
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
    k = keras.layers.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero,
                               trainable=layer.trainable, dtype=_dtype(layer), name=name)
    k.build((None, None))
    copy_weights_to_keras(layer, k)
    return k


def _lstm_kwargs(layer) -> dict:
    return dict(units=layer.units, return_sequences=layer.return_sequences,
                recurrent_activation=("sigmoid" if layer.recurrent_activation == "sigmoid"
                                      else keras2_hard_sigmoid()),
                zero_output_for_mask=layer.zero_output_for_mask, use_cudnn=False,
                dtype=_dtype(layer))


def keras_lstm(layer, *, return_state: bool = False, name: str | None = None):
    """``LSTM`` equal to a scratchvae :class:`LSTM` (all options; gates i, f, c, o)."""
    keras = get_keras()
    k = keras.layers.LSTM(go_backwards=layer.go_backwards, return_state=return_state,
                          name=name, **_lstm_kwargs(layer))
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
    from ..layers import Bidirectional, Dense, Embedding, LSTM, RepeatVector
    for cls, fn in ((Bidirectional, keras_bidirectional), (LSTM, keras_lstm), (Dense, keras_dense),
                    (Embedding, keras_embedding), (RepeatVector, keras_repeat_vector)):
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
    layer.load_state_dict({n: get_keras().ops.convert_to_numpy(v.value)
                           for n, v in keras_variables(layer, k).items()})
