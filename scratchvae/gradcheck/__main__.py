"""python -m scratchvae.gradcheck: check every backward pass against finite differences."""

from __future__ import annotations

import sys

from ..backend import BackendError
from ..cli.flags import add_flag, command_parser
from . import CASES, TOLERANCE, load_model_cases, run_checks
from .explain import EXAMPLES, explain_main


def build_parser():
    parser = command_parser(
        "python -m scratchvae.gradcheck",
        "Compare every layer's, loss's and model's hand-written gradients with central "
        "finite differences, (L(x+h) - L(x-h)) / 2h. The error of an array is "
        "max|analytic - numeric| / max(|analytic|, |numeric|) over its entries; a check "
        f"passes at <= {TOLERANCE:g} (meaningful in float64).",
        (
            "python -m scratchvae.gradcheck",
            "python -m scratchvae.gradcheck --only lstm --backend numba",
            "python -m scratchvae.gradcheck --explain dense",
        ),
    )
    add_flag(parser, "backend", default="numpy")
    add_flag(
        parser,
        "dtype",
        default="float64",
        help="float32 runs, but finite differences in float32 are only good to ~1e-2",
    )
    parser.add_argument("--only", metavar="TEXT", help="run only the checks whose name contains TEXT (default: all)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    add_flag(parser, "seed", help="seed of the random inputs and parameters")
    parser.add_argument(
        "--explain",
        metavar="LAYER",
        help="instead, print a worked example for one layer or loss: every gradient entry, "
        f"analytic and numeric side by side ({', '.join(EXAMPLES)})",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.explain is not None:
        return explain_main(args.explain, args.backend, args.dtype, args.seed)

    load_model_cases()
    names = [n for n in CASES if args.only is None or args.only.lower() in n.lower()]
    if args.list:
        print("\n".join(names))
        return 0
    if not names:
        print(f"error: no check matches {args.only!r}; see --list", file=sys.stderr)
        return 2
    try:
        results = run_checks(args.backend, args.dtype, names, args.seed)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    width = max(len(r.name) for r in results)
    print(f"gradient check: backend {args.backend}, {args.dtype}, bound {TOLERANCE:g}\n")
    print(f"{'check':<{width}}  max rel. error  worst array")
    for r in results:
        worst = max(r.errors, key=r.errors.get) if r.errors else "-"
        print(f"{r.name:<{width}}  {r.max_error:14.2e}  {worst}{'' if r.passed else '   FAILED'}")
    passed = sum(r.passed for r in results)
    print(f"\n{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
