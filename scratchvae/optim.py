"""Optimisers with Keras 3 semantics and defaults: Adam, SGD, RMSprop; global-norm clipping.

An optimiser holds references to a model's parameter and gradient arrays (aligned
``{path: array}`` dicts) and updates the parameters in place on :meth:`step`.
Its state (moments, step count) is plain arrays, saved with checkpoints.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import NumpyBackend, get_backend
from .layers.base import Array


class Optimizer:
    """Common machinery: clipping, step counting, state for checkpoints.

    ``global_clipnorm``: if the norm of all gradients together exceeds it, every
    gradient is scaled by global_clipnorm / norm (Keras ``global_clipnorm``).
    """

    slots: tuple[str, ...] = ()

    def __init__(
        self,
        params: dict[str, Array],
        grads: dict[str, Array],
        *,
        learning_rate: float,
        global_clipnorm: float | None = None,
        backend: str | NumpyBackend = "numpy",
    ) -> None:
        if params.keys() != grads.keys():
            raise ValueError("params and grads must have the same keys")
        self.params, self.grads = params, grads
        self.learning_rate = learning_rate
        self.global_clipnorm = global_clipnorm
        self.backend = get_backend(backend)
        self.iterations = 0
        self.state = {slot: {k: self.backend.xp.zeros_like(p) for k, p in params.items()} for slot in self.slots}
        self._grad_norm = float("nan")  # a float, or a 0-d device array on a GPU

    @property
    def last_grad_norm(self) -> float:
        """The global norm of the gradients of the last step, before clipping.  On a GPU the norm
        stays on the device until read: reading it is the step's one synchronisation."""
        return float(self._grad_norm)

    def global_norm(self) -> float:
        """sqrt of the sum of squares of every gradient entry."""
        return float(self.backend.global_norm(list(self.grads.values())))

    def clip(self) -> None:
        """The global norm of the gradients (kept for :attr:`last_grad_norm`), and every gradient scaled
        down when it exceeds ``global_clipnorm``."""
        grads = list(self.grads.values())
        self._grad_norm = self.backend.global_norm(grads)
        if self.global_clipnorm is not None:
            self.backend.clip_by_global_norm(grads, self._grad_norm, self.global_clipnorm)

    def step(self) -> None:
        """Clip, then update every parameter from its gradient."""
        self.clip()
        self.iterations += 1
        self.update_all()

    def update_all(self) -> None:
        for name, p in self.params.items():
            self.update(name, p, self.grads[name])

    def update(self, name: str, param: Array, grad: Array) -> None:
        """Update one parameter in place from its gradient (the subclass's rule)."""
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, np.ndarray]:
        """The step count and every slot array, on the host, keyed ``slot/path``."""
        out = {"iterations": np.array(self.iterations)}
        for slot, arrays in self.state.items():
            for k, a in arrays.items():
                out[f"{slot}/{k}"] = self.backend.to_numpy(a)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.iterations = int(state["iterations"])
        for slot, arrays in self.state.items():
            for k, a in arrays.items():
                a[...] = self.backend.asarray(state[f"{slot}/{k}"], dtype=a.dtype)


class Adam(Optimizer):
    """Adam (Kingma & Ba), in the Keras form with the bias corrections folded into the rate:

        lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
        m <- m + (g - m)(1 - b1);   v <- v + (g^2 - v)(1 - b2)
        p <- p - lr_t * m / (sqrt(v) + eps)
    Defaults as Keras: lr 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
    """

    slots = ("m", "v")

    def __init__(
        self,
        params: dict[str, Array],
        grads: dict[str, Array],
        *,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        super().__init__(params, grads, learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _lr_t(self) -> float:
        t = self.iterations
        return self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def update(self, name: str, param: Array, grad: Array) -> None:
        self.backend.adam_update(
            param,
            grad,
            self.state["m"][name],
            self.state["v"][name],
            self._lr_t(),
            self.beta_1,
            self.beta_2,
            self.epsilon,
        )

    def update_all(self) -> None:
        """Every parameter in one fused update (one kernel launch on the cupy backend)."""
        names = list(self.params)
        m, v = self.state["m"], self.state["v"]
        self.backend.adam_update_all(
            [self.params[k] for k in names],
            [self.grads[k] for k in names],
            [m[k] for k in names],
            [v[k] for k in names],
            self._lr_t(),
            self.beta_1,
            self.beta_2,
            self.epsilon,
        )


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as Keras:

        m <- momentum m - lr g
        p <- p + m                        (plain momentum)
        p <- p + momentum m - lr g        (nesterov)
    Defaults as Keras: lr 0.01, momentum 0.
    """

    slots = ("momentum",)

    def __init__(
        self,
        params: dict[str, Array],
        grads: dict[str, Array],
        *,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(params, grads, learning_rate=learning_rate, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, name: str, param: Array, grad: Array) -> None:
        lr = self.learning_rate
        if self.momentum == 0.0:
            param -= lr * grad
            return
        m = self.state["momentum"][name]
        m *= self.momentum
        m -= lr * grad
        if self.nesterov:
            param += self.momentum * m - lr * grad
        else:
            param += m


class RMSprop(Optimizer):
    """RMSprop as Keras 3 (not centered, no momentum):

        v <- rho v + (1 - rho) g^2
        p <- p - lr g / sqrt(v + eps)
    Defaults as Keras: lr 1e-3, rho 0.9, epsilon 1e-7.
    """

    slots = ("velocity",)

    def __init__(
        self,
        params: dict[str, Array],
        grads: dict[str, Array],
        *,
        learning_rate: float = 1e-3,
        rho: float = 0.9,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        super().__init__(params, grads, learning_rate=learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def update(self, name: str, param: Array, grad: Array) -> None:
        v = self.state["velocity"][name]
        v *= self.rho
        v += (1.0 - self.rho) * grad * grad
        param -= self.learning_rate * grad / self.backend.xp.sqrt(v + self.epsilon)


OPTIMIZERS = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}


def make_optimizer(name: str, params: dict[str, Array], grads: dict[str, Array], **kwargs) -> Optimizer:
    """An optimiser by name ("adam", "sgd", "rmsprop")."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(params, grads, **kwargs)
