"""Command-line interface: thin wrappers, one API call per subcommand.

Every subcommand's flags are named like the keyword arguments of the API
function it calls. User mistakes raise :class:`noisevision.UserError`, which is
printed as one line (``noisevision: error: ...``) with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _env  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from .errors import UserError


# ------------------------------------------------------------------ list / generate / preview (generation engine)


def _add_generation_parsers(sub: argparse._SubParsersAction) -> None:
    pass  # filled in below by the generation engine


# ------------------------------------------------------------------ pretrain (owned by the pretraining code)


def _add_pretrain_parser(sub: argparse._SubParsersAction) -> None:
    pass


# ------------------------------------------------------------------ probe (owned by the evaluation code)


def _add_probe_parser(sub: argparse._SubParsersAction) -> None:
    pass


# ------------------------------------------------------------------ bench (owned by the benchmark suite)


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    pass


# ------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="noisevision",
        description="Train vision models without real images: generate noise datasets, pretrain, probe.",
    )
    parser.add_argument("--version", action="version", version=f"noisevision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_generation_parsers(sub)
    _add_pretrain_parser(sub)
    _add_probe_parser(sub)
    _add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"noisevision: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noisevision: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
