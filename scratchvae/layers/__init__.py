"""Layers, each a forward pass and its hand-written backward pass side by side."""

from .activations import ACTIVATIONS
from .base import Array, Layer
from .bidirectional import Bidirectional
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .lstm import LSTM
from .repeat import RepeatVector
from .sampling import GaussianSample
from .tied_output import TiedOutput

__all__ = [
    "ACTIVATIONS",
    "Array",
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "GaussianSample",
    "LSTM",
    "Layer",
    "RepeatVector",
    "TiedOutput",
]
