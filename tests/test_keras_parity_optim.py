"""Optimiser parity with Keras 3 (torch backend, float64): the same parameters and the
same gradient sequence through scratchvae's and Keras's Adam / SGD (momentum, Nesterov) /
RMSprop, with and without ``global_clipnorm``; parameters and slots compared every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras_reference import N, T, assert_out, keras, rng_from

from scratchvae.optim import make_optimizer

PARITY = settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

CONFIGS = {
    "adam": st.fixed_dictionaries(
        {
            "learning_rate": st.sampled_from([1e-3, 0.05]),
            "beta_1": st.sampled_from([0.9, 0.5]),
            "beta_2": st.sampled_from([0.999, 0.9]),
        }
    ),
    "sgd": st.fixed_dictionaries(
        {
            "learning_rate": st.sampled_from([0.01, 0.1]),
            "momentum": st.sampled_from([0.0, 0.9]),
            "nesterov": st.booleans(),
        }
    ),
    "rmsprop": st.fixed_dictionaries(
        {"learning_rate": st.sampled_from([1e-3, 0.01]), "rho": st.sampled_from([0.9, 0.5])}
    ),
}

KERAS_OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
# Keras slot variables per scratchvae slot name
KERAS_SLOTS = {"m": "_momentums", "v": "_velocities", "momentum": "momentums", "velocity": "_velocities"}


def _keras_slots(opt, name):
    """The Keras slot variables of one kind, aligned with the trainable variables."""
    attr = KERAS_SLOTS[name]
    return getattr(opt, attr, None) or getattr(opt, attr.lstrip("_"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("clip", [None, 1.0])
@PARITY
@given(
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
    steps=st.integers(1, 5),
    shapes=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=3),
)
def test_optimizer(seed, data, name, clip, steps, shapes):
    config = data.draw(CONFIGS[name])
    rng = rng_from(seed)
    init = {f"p{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}
    params = {k: v.copy() for k, v in init.items()}
    grads = {k: np.zeros_like(v) for k, v in init.items()}
    opt = make_optimizer(name, params, grads, global_clipnorm=clip, **config)

    kvars = [keras.Variable(v.copy(), dtype="float64") for v in init.values()]
    kopt = getattr(keras.optimizers, KERAS_OPTIMIZERS[name])(global_clipnorm=clip, **config)
    kopt.build(kvars)

    for step in range(steps):
        scale = rng.choice([0.1, 1.0, 10.0])  # norms below and above the clip threshold
        g = {k: rng.standard_normal(v.shape) * scale for k, v in init.items()}
        for k in grads:
            grads[k][...] = g[k]
        opt.step()
        kopt.apply_gradients(zip([T(g[k]) for k in init], kvars))
        for (k, p), kv in zip(params.items(), kvars):
            assert_out(
                p, N(kv), f"{name} step {step + 1} {k}", f"optimizer {name}" + (" global_clipnorm" if clip else "")
            )
        for slot in opt.state:
            for (k, a), kv in zip(opt.state[slot].items(), _keras_slots(kopt, slot)):
                assert_out(a, N(kv), f"{name} step {step + 1} slot {slot}/{k}", f"optimizer {name} slots")
    assert opt.iterations == int(N(kopt.iterations))
