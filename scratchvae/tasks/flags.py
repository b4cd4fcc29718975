"""Moved: flag types live in :mod:`scratchvae.cli.types`, shared flags in :mod:`scratchvae.cli.flags`.

Kept so code written against the old place (other branches) still imports.
"""

from ..cli.flags import apply_threads  # noqa: F401
from ..cli.types import positive_int  # noqa: F401
