"""Keras 3 ``.weights.h5`` interchange: export and import scratchvae parameters.

Keras 3 ``model.save_weights("x.weights.h5")`` writes one HDF5 group per layer, addressed
by *where the layer sits*, not by its name:

* a Functional model's layers live under ``layers/<class>``, where ``<class>`` is the
  layer's class name in snake case (``LSTM`` -> ``lstm``, ``TimeDistributed`` ->
  ``time_distributed``), numbered in ``model.layers`` order when a class repeats
  (``dense``, ``dense_1``, ``dense_2``, ...);
* a layer's own variables are datasets ``<group>/vars/0``, ``vars/1``, ... in the order
  the layer created them; each ``vars`` group carries the layer's name as attribute
  ``name`` (informative only: loading goes by path);
* wrapped layers nest by attribute: ``TimeDistributed`` -> ``<group>/layer/vars/*``,
  ``LSTM`` -> ``<group>/cell/vars/*`` (kernel, recurrent_kernel, bias),
  ``Bidirectional`` -> ``<group>/forward_layer/cell/vars/*`` and
  ``<group>/backward_layer/cell/vars/*``.

A model's mapping is a :class:`KerasLayout`: the weight-bearing Keras layers of the
matching Keras model in ``model.layers`` order, each naming the scratchvae layer (a path
in the Layer tree) that supplies its variables.  :func:`functional_layout` builds one
from a short list of ``(kind, source)`` pairs, so a model declares its mapping as, e.g.::

    def keras_layout(self):
        return functional_layout([
            ("embedding", "embedding"),
            ("bidirectional", "encoder/bilstm_0"),
            ("dense", "encoder/mean"),
            ("time_distributed", "decoder/output"),
        ])

A model without a declared layout gets :func:`default_layout`: its parametrised layers
in parameter order, which matches a Keras model that applies the same layers in that
order.  Layouts can also be registered per model class with :func:`register_layout`.

This module never imports Keras; h5py is imported when a file is read or written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..layers.base import Layer

# kind -> Keras class whose snake-cased name numbers the h5 group
KERAS_CLASS = {
    "dense": "Dense",
    "time_distributed": "TimeDistributed",  # TimeDistributed(Dense)
    "embedding": "Embedding",
    "lstm": "LSTM",
    "bidirectional": "Bidirectional",  # Bidirectional(LSTM), merge_mode="concat"
}

# kind -> [(dataset path inside the layer's group, scratchvae parameter name)]
KIND_VARIABLES: dict[str, list[tuple[str, str]]] = {
    "dense": [("vars/0", "kernel"), ("vars/1", "bias")],
    "time_distributed": [("layer/vars/0", "kernel"), ("layer/vars/1", "bias")],
    "embedding": [("vars/0", "embeddings")],
    "lstm": [("cell/vars/0", "kernel"), ("cell/vars/1", "recurrent_kernel"), ("cell/vars/2", "bias")],
    "bidirectional": [
        (f"{side}/cell/vars/{i}", f"{side}/{name}")
        for side in ("forward_layer", "backward_layer")
        for i, name in enumerate(("kernel", "recurrent_kernel", "bias"))
    ],
}

# kind -> [(sub-group, the name Keras gives that sub-layer)], written as ``vars`` name attributes
INNER_NAMES: dict[str, list[tuple[str, str]]] = {
    "dense": [],
    "embedding": [],
    "time_distributed": [("layer", "dense")],
    "lstm": [("cell", "lstm_cell")],
    "bidirectional": [
        ("forward_layer", "forward_lstm"),
        ("forward_layer/cell", "lstm_cell"),
        ("backward_layer", "backward_lstm"),
        ("backward_layer/cell", "lstm_cell"),
    ],
}

# kind -> Keras variable path suffix (what ``variable.path`` shows) per scratchvae parameter
KERAS_VARIABLE_NAMES: dict[str, dict[str, str]] = {
    "dense": {"kernel": "kernel", "bias": "bias"},
    "time_distributed": {"kernel": "{inner}/kernel", "bias": "{inner}/bias"},
    "embedding": {"embeddings": "embeddings"},
    "lstm": {"kernel": "lstm_cell/kernel", "recurrent_kernel": "lstm_cell/recurrent_kernel", "bias": "lstm_cell/bias"},
    "bidirectional": {
        f"{side}_layer/{p}": f"{side}_{{inner}}/lstm_cell/{p}"
        for side in ("forward", "backward")
        for p in ("kernel", "recurrent_kernel", "bias")
    },
}


class KerasInteropError(RuntimeError):
    """A file or layout does not match the model; the message says which array and why."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - exercised only without h5py
        raise ImportError("Keras .weights.h5 interchange needs h5py: pip install h5py") from None
    return h5py


def to_snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: the group name of a layer class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


@dataclass(frozen=True)
class KerasEntry:
    """One weight-bearing Keras layer.

    kind    one of :data:`KIND_VARIABLES` ("dense", "time_distributed", "embedding",
            "lstm", "bidirectional")
    source  path of the scratchvae layer in the model's Layer tree ("" for the model itself)
    group   HDF5 group of the Keras layer, e.g. "layers/bidirectional_1"
    name    the Keras layer's name (written as the ``vars`` group's ``name`` attribute)
    """

    kind: str
    source: str
    group: str
    name: str = ""

    def variables(self) -> list[tuple[str, str]]:
        """[(h5 dataset path, scratchvae parameter path)] of this layer."""
        prefix = self.source + "/" if self.source else ""
        return [(f"{self.group}/{ds}", prefix + p) for ds, p in KIND_VARIABLES[self.kind]]


@dataclass
class KerasLayout:
    """The mapping of a scratchvae model onto a Keras model's ``.weights.h5`` layout."""

    entries: list[KerasEntry] = field(default_factory=list)
    root_name: str = "functional"

    def mapping(self) -> dict[str, str]:
        """{scratchvae parameter path: h5 dataset path}."""
        return {p: ds for e in self.entries for ds, p in e.variables()}

    def keras_variable_paths(self) -> dict[str, str]:
        """{scratchvae parameter path: Keras ``variable.path``} (by the Keras layer names)."""
        out = {}
        for e in self.entries:
            prefix = e.source + "/" if e.source else ""
            for p, suffix in KERAS_VARIABLE_NAMES[e.kind].items():
                inner = {"time_distributed": "dense", "bidirectional": "lstm"}.get(e.kind, "")
                out[prefix + p] = f"{e.name or e.group}/" + suffix.format(inner=inner)
        return out


def functional_layout(layers: Iterable[tuple], *, prefix: str = "layers", root_name: str = "functional") -> KerasLayout:
    """A layout for a Keras Functional model from its weight-bearing layers, in
    ``model.layers`` order: each item is ``(kind, source)`` or ``(kind, source, keras_name)``.

    Groups are numbered as Keras numbers them: per class, in order (``lstm``, ``lstm_1``).
    Only layers of the listed classes count, so weightless layers (InputLayer,
    RepeatVector, Concatenate, ...) may be left out; a model must not hold a weightless
    layer of a listed class.
    """
    used: dict[str, int] = {}
    entries = []
    for item in layers:
        kind, source, *rest = item
        if kind not in KIND_VARIABLES:
            raise ValueError(f"unknown Keras layer kind {kind!r}; use one of {', '.join(KIND_VARIABLES)}")
        base = to_snake_case(KERAS_CLASS[kind])
        if base in used:
            used[base] += 1
            group = f"{base}_{used[base]}"
        else:
            used[base] = 0
            group = base
        entries.append(KerasEntry(kind, source, f"{prefix}/{group}" if prefix else group, rest[0] if rest else ""))
    return KerasLayout(entries, root_name)


# ----------------------------------------------------------------- layouts per model
_LAYOUTS: dict[str, Callable[[Layer], KerasLayout]] = {}


def register_layout(cls_or_name, layout_fn: Callable[[Layer], KerasLayout] | None = None):
    """Register ``layout_fn(model) -> KerasLayout`` for a model class (or its name).

    Usable as a decorator: ``@register_layout("ImdbVAE")``.
    """
    name = cls_or_name if isinstance(cls_or_name, str) else cls_or_name.__name__

    def wrap(fn):
        _LAYOUTS[name] = fn
        return fn

    return wrap(layout_fn) if layout_fn is not None else wrap


def _kind_of(layer: Layer) -> str | None:
    from ..layers import LSTM, Bidirectional, Dense, Embedding

    for cls, kind in ((Bidirectional, "bidirectional"), (LSTM, "lstm"), (Dense, "dense"), (Embedding, "embedding")):
        if isinstance(layer, cls):
            return kind
    return None


def _walk(layer: Layer, path: str = ""):
    """(path, layer) for the layer and every descendant, parents first, children in order."""
    yield path, layer
    for name, child in layer.children.items():
        yield from _walk(child, f"{path}/{name}" if path else name)


def default_layout(model: Layer) -> KerasLayout:
    """Every parametrised layer of ``model`` (Dense, Embedding, LSTM, Bidirectional) in
    parameter order, as the weight-bearing layers of a Keras Functional model."""
    items, covered = [], set()
    for path, layer in _walk(model):
        if any(path == c or path.startswith(c + "/") for c in covered):
            continue  # inside a Bidirectional already listed
        kind = _kind_of(layer)
        if kind is not None:
            items.append((kind, path, path.replace("/", "_") or layer.name))
            covered.add(path)
        elif layer.params:
            raise KerasInteropError(
                f"layer {path or '<root>'!r} ({type(layer).__name__}) has parameters "
                "but no Keras equivalent; declare a keras_layout()"
            )
    return functional_layout(items)


def layout_of(model: Layer, layout: KerasLayout | None = None) -> KerasLayout:
    """The layout to use: ``layout`` if given, else the model's ``keras_layout()``, else a
    registered one, else :func:`default_layout`."""
    if layout is not None:
        return layout
    if hasattr(model, "keras_layout"):
        return model.keras_layout()
    if type(model).__name__ in _LAYOUTS:
        return _LAYOUTS[type(model).__name__](model)
    return default_layout(model)


def check_layout(model: Layer, layout: KerasLayout) -> dict[str, str]:
    """Verify the layout covers every parameter of the model exactly once."""
    mapping = layout.mapping()
    params = model.parameters()
    missing = sorted(params.keys() - mapping.keys())
    unknown = sorted(mapping.keys() - params.keys())
    if missing or unknown:
        raise KerasInteropError(
            f"Keras layout does not match the model: parameters without a Keras "
            f"variable {missing}, layout entries naming no parameter {unknown}"
        )
    datasets = list(mapping.values())
    if len(set(datasets)) != len(datasets):
        raise KerasInteropError("Keras layout maps two parameters to the same h5 dataset")
    return mapping


# ----------------------------------------------------------------- files
def export_keras_weights(
    model: Layer, path: str | os.PathLike, *, layout: KerasLayout | None = None, dtype=None
) -> dict[str, str]:
    """Write ``model``'s parameters as a Keras 3 ``.weights.h5`` file.

    ``keras_model.load_weights(path)`` then loads them into the matching Keras model (the
    one from :mod:`scratchvae.interop.keras_models`).  ``dtype`` (default: the model's)
    is the dtype of the stored arrays.  Returns {scratchvae path: h5 dataset path}.
    """
    h5py = _h5py()
    layout = layout_of(model, layout)
    mapping = check_layout(model, layout)
    state = model.state_dict()
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise KerasInteropError(f"Keras reads weights only from files named *.weights.h5, not {path!r}")
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = layout.root_name
        for entry in layout.entries:
            _make_vars(f, entry.group, entry.name or entry.group.rsplit("/", 1)[-1])
            for inner, name in INNER_NAMES[entry.kind]:
                _make_vars(f, f"{entry.group}/{inner}", name)
            for ds, p in entry.variables():
                a = state[p]
                f.create_dataset(ds, data=a if dtype is None else a.astype(dtype))
    return mapping


def _make_vars(f, group: str, name: str) -> None:
    """Create ``<group>/vars`` with its ``name`` attribute, as Keras writes it."""
    g = f.require_group(group).require_group("vars")
    g.attrs["name"] = name


def read_keras_weights(path: str | os.PathLike, layout: KerasLayout) -> dict[str, np.ndarray]:
    """{scratchvae parameter path: array} from a ``.weights.h5`` file, via ``layout``.

    Raises :class:`KerasInteropError` for a missing dataset, or for a layer weight in the
    file that the layout does not account for (a file of another model).  Other state a
    Keras file may hold (``optimizer/vars/*`` of a compiled model) is ignored.
    """
    h5py = _h5py()
    mapping = layout.mapping()
    wanted = set(mapping.values())
    roots = {ds.split("/", 1)[0] for ds in wanted}  # "layers" for a Functional model
    out = {}
    with h5py.File(os.fspath(path), "r") as f:
        present = []
        f.visititems(lambda name, obj: present.append(name) if isinstance(obj, h5py.Dataset) else None)
        extra = sorted(n for n in set(present) - wanted if n.split("/", 1)[0] in roots)
        if extra:
            raise KerasInteropError(
                f"{path}: weights {extra} have no place in this model's layout "
                "(the file belongs to another model or configuration)"
            )
        for p, ds in mapping.items():
            if ds not in f:
                raise KerasInteropError(f"{path}: no dataset {ds!r} for parameter {p!r}")
            out[p] = np.asarray(f[ds][()])
    return out


def import_keras_weights(model: Layer, path: str | os.PathLike, *, layout: KerasLayout | None = None) -> dict[str, str]:
    """Load a Keras 3 ``.weights.h5`` file (written by Keras ``save_weights`` for the
    matching Keras model, or by :func:`export_keras_weights`) into ``model``'s parameters.

    Shapes must match exactly; values are cast to the model's dtype.
    Returns {scratchvae path: h5 dataset path}.
    """
    layout = layout_of(model, layout)
    mapping = check_layout(model, layout)
    weights = read_keras_weights(path, layout)
    params = model.parameters()
    for p, a in weights.items():
        if a.shape != tuple(params[p].shape):
            raise KerasInteropError(
                f"{path}: {mapping[p]} has shape {a.shape}, but parameter {p!r} has shape {tuple(params[p].shape)}"
            )
    model.load_state_dict(weights)
    return mapping


# ----------------------------------------------------------------- the project's models
# Each layout lists the weight-bearing layers of the Keras model that
# scratchvae.interop.keras_models builds for the model, in that model's ``model.layers``
# order (Keras orders a Functional model's layers by depth from the outputs, then by
# graph traversal; tests/test_keras_parity_models.py checks that these lists agree with
# the builders).  Keras layer names are the scratchvae paths with "/" -> "_".


def _named(kind: str, path: str) -> tuple[str, str, str]:
    return kind, path, path.replace("/", "_")


@register_layout("DenseVAE")
def mnist_vae_layout(model=None) -> KerasLayout:
    """MNIST dense VAE <-> ``build_keras_mnist_vae``."""
    return functional_layout(
        [
            _named("dense", "encoder/hidden"),
            _named("dense", "encoder/log_var"),
            _named("dense", "encoder/mean"),
            _named("dense", "decoder/hidden"),
            _named("dense", "decoder/logits"),
        ],
        root_name="mnist_vae",
    )


@register_layout("IMDBVAE")
def imdb_vae_layout(model=None) -> KerasLayout:
    """IMDB VAE with its sentiment head <-> ``build_keras_imdb_vae``."""
    return functional_layout(
        [
            _named("embedding", "embedding"),
            _named("bidirectional", "encoder_0"),
            _named("bidirectional", "encoder_1"),
            _named("dense", "hidden"),
            _named("dense", "z_log_var"),
            _named("dense", "z_mean"),
            _named("lstm", "decoder_0"),
            _named("lstm", "decoder_1"),
            _named("dense", "sentiment_hidden"),
            _named("time_distributed", "output"),
            _named("dense", "sentiment_output"),
        ],
        root_name="imdb_vae",
    )


@register_layout("SentenceVAE")
def sentence_vae_layout(model) -> KerasLayout:
    """Sentence VAE <-> ``build_keras_sentence_vae`` (the encoder is an LSTM or a
    Bidirectional LSTM, per ``config.bidirectional``); pass the model or its config."""
    bidirectional = getattr(model, "config", model).bidirectional
    return functional_layout(
        [
            _named("embedding", "embedding"),
            _named("bidirectional" if bidirectional else "lstm", "encoder"),
            _named("dense", "to_logvar"),
            _named("dense", "to_mean"),
            _named("dense", "to_state"),
            _named("lstm", "decoder"),
            _named("time_distributed", "output"),
        ],
        root_name="sentence_vae",
    )
