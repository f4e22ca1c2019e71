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
    p = sub.add_parser("list", help="list the registered generators", description="List the registered generators.")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'stylegan/*'")
    p.add_argument("--verbose", "-v", action="store_true", help="also print every default parameter")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "generate",
        help="write a synthetic image dataset",
        description="Generate a dataset (ImageFolder JPEG/PNG or one packed .npy array); resumable, parallel, sharded.",
    )
    p.add_argument("generator", help="generator name (see `noisevision list`)")
    p.add_argument("--num-images", "-n", type=int, required=True, help="number of images N")
    p.add_argument("--size", "-s", type=int, default=128, help="image side in px (default 128)")
    p.add_argument("--out", "-o", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    p.add_argument("--workers", "-j", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--format", choices=["jpeg", "png", "npy"], default="jpeg", help="jpeg (q95, default), png or npy")
    p.add_argument("--shard", default=None, help="i/N: do this share of the buckets (default: RANK/WORLD_SIZE or 0/1)")
    p.add_argument("--overwrite", action="store_true", help="replace a directory that holds a different dataset")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (torch-based generators)")
    p.add_argument("--batch-size", type=int, default=None, help="images per render call (default: the generator's)")
    _add_param_flag(p)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "preview",
        help="write a labelled contact sheet of a generator",
        description="Render a grid of images (a contact sheet PNG) of one generator, or of all with --all.",
    )
    p.add_argument("generator", nargs="?", help="generator name (omit with --all)")
    p.add_argument("--out", "-o", required=True, help="sheet.png, or a directory with --all")
    p.add_argument("--all", action="store_true", help="one sheet per registered generator into --out DIR")
    p.add_argument("--pattern", default="*", help="with --all: only generators matching this wildcard")
    p.add_argument("--rows", type=int, default=None, help="rows (default 8; 4 with --all)")
    p.add_argument("--cols", type=int, default=8, help="columns (default 8)")
    p.add_argument("--size", "-s", type=int, default=None, help="image size (default 128; 96 with --all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                   help="use the generators' CPU-friendly settings (default: on with --all)")
    _add_param_flag(p)
    p.set_defaults(func=_cmd_preview)


def _add_param_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--param", "-p", action="append", default=[], metavar="KEY=VALUE",
        help="override a generator parameter (repeatable), e.g. -p sigma=2.5 -p exponent_range=1,3",
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from .generators import dynamic_prefixes, get_spec, list_generators
    from .generators.base import params_to_dict

    names = list_generators(args.pattern)
    if not names and args.pattern == "*":
        print("no generators registered")
    width = max([len(n) for n in names] + [10])
    family = None
    for name in names:
        spec = get_spec(name)
        if spec.family != family:
            family = spec.family
            print(f"\n{family}")
        print(f"  {name:<{width}}  {spec.description}")
        if args.verbose:
            params = params_to_dict(spec.params_cls(**spec.defaults))
            for k, v in params.items():
                print(f"  {'':<{width}}    {k} = {v}")
    prefixes = dynamic_prefixes()
    if prefixes and args.pattern == "*":
        print("\ncombinators (wrap any generator above)")
        for prefix, help_ in prefixes.items():
            print(f"  {prefix + '...':<{width}}  {help_}")
    print("\nOverride parameters with -p KEY=VALUE; `noisevision list -v` shows the defaults.")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .data.writer import generate_dataset
    from .generators import parse_param_overrides

    result = generate_dataset(
        args.generator,
        args.num_images,
        args.size,
        args.out,
        seed=args.seed,
        format=args.format,
        params=parse_param_overrides(args.param),
        workers=args.workers,
        shard=args.shard,
        overwrite=args.overwrite,
        device=args.device,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    state = "complete" if result.complete else "this shard done; other shards still missing"
    print(
        f"{args.generator}: rendered {result.rendered} images, {result.skipped} already there "
        f"({result.images_per_second:.1f} img/s) -> {result.out} [{state}]"
    )
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from .generators import parse_param_overrides
    from .preview import preview, preview_all

    device = "cuda" if args.device == "auto" and _cuda() else ("cpu" if args.device == "auto" else args.device)
    if args.all:
        if args.generator:
            raise UserError("give either a generator name or --all, not both")
        paths = preview_all(args.out, pattern=args.pattern, rows=args.rows or 4, cols=args.cols,
                            size=args.size or 96, seed=args.seed, device=device,
                            fast=True if args.fast is None else args.fast)
        print(f"wrote {len(paths)} contact sheets to {args.out}")
        return 0
    if not args.generator:
        raise UserError("name a generator (see `noisevision list`) or pass --all")
    path = preview(args.generator, args.out, rows=args.rows or 8, cols=args.cols, size=args.size or 128,
                   seed=args.seed, params=parse_param_overrides(args.param), device=device, fast=bool(args.fast))
    print(f"wrote {path}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
