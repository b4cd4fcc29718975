"""Interchange with Keras 3: ``.weights.h5`` export/import (h5py) and Keras model builders.

:mod:`.keras_io` reads and writes the files without importing Keras;
:mod:`.keras_models` builds the equivalent Keras models (it imports Keras when called).
"""

from .keras_io import (
    KerasEntry,
    KerasInteropError,
    KerasLayout,
    default_layout,
    export_keras_weights,
    functional_layout,
    import_keras_weights,
    layout_of,
    read_keras_weights,
    register_layout,
)

__all__ = [
    "KerasEntry",
    "KerasInteropError",
    "KerasLayout",
    "default_layout",
    "export_keras_weights",
    "functional_layout",
    "import_keras_weights",
    "layout_of",
    "read_keras_weights",
    "register_layout",
]
