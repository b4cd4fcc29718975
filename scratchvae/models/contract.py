"""The contract every VAE in :mod:`scratchvae.models` follows, so one training loop drives them all.

    terms = model.forward(*inputs, kl_weight=beta)   # a dict of floats: terms["loss"] and its parts
    model.backward()                                 # gradients of terms["loss"], added into model.gradients()
    optimizer.step()

* ``forward(*inputs, kl_weight: float = 1.0, ...) -> dict[str, float]``: the model's own inputs
  (each named once), then the keyword-only ``kl_weight`` (beta: loss = reconstruction + beta * KL,
  annealed by the caller) and any model-specific keyword options. The result holds the loss under
  ``"loss"`` and the terms it is made of beside it (``"kl"`` always; the reconstruction term under the
  model's name for it, ``"nll"``, ``"reconstruction"`` or ``"rec"``; metrics such as ``"accuracy"``),
  every value a Python float, batch means per example. Nothing is left behind in attributes for the
  caller to read back (per-example terms, kept by the loss modules, aside).
* ``backward(dloss: float = 1.0) -> None``: the gradients of ``dloss * loss`` of the last forward,
  accumulated into every parameter's gradient, as each loss in :mod:`scratchvae.losses` does.
"""

from __future__ import annotations

from numbers import Real


def check_kl_weight(kl_weight: float) -> None:
    """A one-line ValueError unless the KL weight is a number >= 0."""
    if not isinstance(kl_weight, Real) or not kl_weight >= 0:
        raise ValueError(f"kl_weight must be a number >= 0, got {kl_weight!r}")
