"""The public API of the layers, losses, optimisers and models is annotated: every public function and
method names the types of its arguments and of its result (dunder methods but __init__ aside)."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "scratchvae.layers.activations",
    "scratchvae.layers.base",
    "scratchvae.layers.dense",
    "scratchvae.layers.dropout",
    "scratchvae.layers.embedding",
    "scratchvae.layers.init",
    "scratchvae.layers.sampling",
    "scratchvae.layers.tied_output",
    "scratchvae.losses",
    "scratchvae.optim",
    "scratchvae.models.annealing",
    "scratchvae.models.contract",
    "scratchvae.models.generate",
    "scratchvae.models.imdb",
    "scratchvae.models.latent_metrics",
    "scratchvae.models.mnist",
    "scratchvae.models.sentence",
]


def public_callables(module):
    """(qualified name, function) of the functions and methods ``module`` defines and does not hide."""
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__ or name.startswith("_"):
            continue
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                member = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if inspect.isfunction(member) and (attr == "__init__" or not attr.startswith("_")):
                    yield f"{name}.{attr}", member


def missing_hints(function) -> list[str]:
    signature = inspect.signature(function)
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.annotation is inspect.Parameter.empty
    ]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_public_functions_and_methods_are_annotated(module_name):
    module = importlib.import_module(module_name)
    found = dict(public_callables(module))
    assert found, module_name
    unannotated = {name: missing for name, f in found.items() if (missing := missing_hints(f))}
    assert not unannotated, f"{module_name}: {unannotated}"


def test_the_check_sees_a_missing_hint():
    def f(x: int, y) -> int:
        return x

    def g(x: int):
        return x

    assert missing_hints(f) == ["y"] and missing_hints(g) == ["return"]
