"""python -m scratchvae.evaluate CKPT [options]: evaluate a trained checkpoint.

The checkpoint knows its task; the rest of the command line goes to that task's
evaluation (``python -m scratchvae.evaluate CKPT --help`` lists its options).
"""

from __future__ import annotations

import sys

from .backend import BackendError
from .data.errors import DataError
from .tasks import task_module
from .training import CheckpointError, TrainingError, load_checkpoint


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    try:
        ckpt = load_checkpoint(argv[0])
        return task_module(ckpt.task()).evaluate_main(ckpt, argv[1:])
    except (DataError, BackendError, CheckpointError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
