"""Command-line interface: thin wrappers, one API call per subcommand.

Every subcommand's flags are named like the keyword arguments of the API
function it calls. User mistakes raise :class:`noisevision.UserError`, which is
printed as one line (``noisevision: error: ...``) with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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
    p.add_argument("--verify", action="store_true",
                   help="re-check finished buckets against their checksums and render again those that fail")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "verify",
        help="check a generated dataset against its checksums",
        description="Recompute the checksum of every bucket of a generated dataset (and of its labels). "
        "Exit status 0 when all match; 2 with the list of what differs otherwise "
        "(repair: the same generate command plus --verify).",
    )
    p.add_argument("dir", help="the --out directory of a complete generate run")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser(
        "preview",
        help="write a labelled contact sheet of a generator",
        description="Render a grid of images (a contact sheet PNG) of one generator, or of all with --all.",
    )
    p.add_argument("generator", nargs="?", help="generator name (omit with --all)")
    p.add_argument("--out", "-o", required=True, help="sheet.png or sheet.jpg, or a directory with --all")
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
        verify=args.verify,
    )
    if result.repaired:
        print(f"re-rendered {len(result.repaired)} bucket(s) that failed verification: "
              + ", ".join(f"{b:05d}" for b in result.repaired))
    state = "complete" if result.complete else "this shard done; other shards still missing"
    print(
        f"{args.generator}: rendered {result.rendered} images, {result.skipped} already there "
        f"({result.images_per_second:.1f} img/s) -> {result.out} [{state}]"
    )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .data.manifest import read_manifest
    from .data.writer import verify_dataset

    bad = verify_dataset(args.dir)
    manifest = read_manifest(args.dir) or {}
    buckets, step = len(manifest.get("checksums") or {}), int(manifest.get("bucket_size") or 1)
    if not bad:
        print(f"{args.dir}: all {buckets} bucket(s) match their checksums")
        return 0
    for key in bad:  # the full list on stdout; the summary below is the one error line
        if key.isdigit():
            lo = int(key) * step
            print(f"bucket {key}: images {lo}-{min(lo + step, int(manifest['num_images'])) - 1} differ or are missing")
        else:
            print(f"{key}: differs or is missing")
    shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
    raise UserError(
        f"{args.dir}: {len(bad)} item(s) failed verification ({shown}): files were deleted or changed; "
        "repair with the same generate command plus --verify"
    )


def _cmd_preview(args: argparse.Namespace) -> int:
    from .generators import parse_param_overrides
    from .preview import preview, preview_all

    device = args.device  # checked (and "auto" resolved) by preview()

    def given(value: int | None, default: int) -> int:  # 0 is a value to check, not "the default"
        return default if value is None else value

    if args.all:
        if args.generator:
            raise UserError("give either a generator name or --all, not both")
        paths = preview_all(args.out, pattern=args.pattern, rows=given(args.rows, 4), cols=args.cols,
                            size=given(args.size, 96), seed=args.seed, device=device,
                            fast=True if args.fast is None else args.fast)
        print(f"wrote {len(paths)} contact sheets to {args.out}")
        return 0
    if not args.generator:
        raise UserError("name a generator (see `noisevision list`) or pass --all")
    path = preview(args.generator, args.out, rows=given(args.rows, 8), cols=args.cols, size=given(args.size, 128),
                   seed=args.seed, params=parse_param_overrides(args.param), device=device, fast=bool(args.fast))
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------ pretrain (owned by the pretraining code)


def _add_pretrain_parser(sub: argparse._SubParsersAction) -> None:
    from .train.config import FIELD_HELP, config_fields

    p = sub.add_parser(
        "pretrain",
        help="pretrain an encoder with contrastive SSL on noise images",
        description="Pretrain an encoder (YAML --config first, flags on top; flags are named like "
        "PretrainConfig fields). Multi-process: torchrun --nproc_per_node=K -m noisevision pretrain ...",
    )
    p.add_argument("--config", dest="config_file", metavar="FILE.yaml", help="YAML file of config fields")
    for f in config_fields():
        flag, kind, help_ = f"--{f.name.replace('_', '-')}", str(f.type), FIELD_HELP[f.name]
        if kind.startswith("bool"):  # --fixed / --no-fixed, so a flag can undo a YAML value
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind.startswith("dict"):
            p.add_argument(flag, dest=f.name, nargs="+", metavar="KEY=VALUE", default=None, help=help_)
        else:  # strings; build_config coerces them to the field types
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.split("_")[-1].upper(), help=help_)

    def run(args: argparse.Namespace) -> int:
        from .train import build_config, pretrain
        from .train.loop import summary_line

        overrides = {f.name: getattr(args, f.name) for f in config_fields()}
        summary = pretrain(build_config(args.config_file, overrides))
        if summary["rank"] == 0:
            print(summary_line(summary))
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------ probe (owned by the evaluation code)


def _add_probe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="evaluate a frozen encoder on real images (linear probe, kNN, alignment/uniformity)",
        description="Linear probe (fast: L-BFGS on cached features; paper: augmented Adam head), weighted kNN "
        "on the embedding, and alignment/uniformity, from one feature extraction. Writes a JSON result.",
    )
    p.add_argument("--encoder", required=True, help="run dir, encoder.pt, random:<arch>[:key=value,...] or pixels")
    p.add_argument("--dataset", required=True, help="cifar10, tiny-imagenet-32 or imagefolder:<path>")
    p.add_argument("--data-root", dest="data_root", help="folder of the real datasets (default $NOISEVISION_DATA)")
    p.add_argument("--train-split", dest="train_split", default="train")
    p.add_argument("--test-split", dest="test_split", help="default: test (val for tiny-imagenet-32)")
    p.add_argument("--layer", help="probe layer (default: the encoder's default probe layer)")
    p.add_argument("--protocol", choices=("fast", "paper"), default="fast")
    p.add_argument("--out", help="write the result JSON here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", dest="image_size", type=int, help="default: the encoder's input size")
    p.add_argument("--bn-recalibrate", dest="bn_recalibrate", action="store_true",
                   help="re-estimate BatchNorm statistics on training images first")
    p.add_argument("--max-train", dest="max_train", type=int)
    p.add_argument("--max-test", dest="max_test", type=int)
    p.add_argument("--epochs", type=int, default=100, help="paper protocol epochs")
    p.add_argument("--arch", dest="expected_arch", help="refuse a checkpoint of another architecture")
    p.add_argument("--skip-bad-images", dest="skip_bad_images", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", dest="cache_dir", help="decoded-image cache (default $NOISEVISION_CACHE)")

    def run(args: argparse.Namespace) -> int:
        from .eval import probe, summary_table

        fields = ("encoder", "dataset", "data_root", "train_split", "test_split", "layer", "protocol", "seed",
                  "image_size", "bn_recalibrate", "max_train", "max_test", "epochs", "expected_arch",
                  "skip_bad_images", "device", "cache_dir")
        result = probe(out=args.out, **{k: getattr(args, k) for k in fields})
        print(summary_table(result))
        if args.out:
            print(f"result written to {args.out}")
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------ bench (owned by the benchmark suite)


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="reproduce the paper's comparison: generate, pretrain, probe every family",
        description="Run (or resume) the comparison suite; writes per-entry JSON, results.md and bar charts.",
    )
    p.add_argument("--suite", choices=["paper"], default="paper", help="which suite (default: paper)")
    p.add_argument("--profile", default="quick", help="quick (CI, minutes), cpu (~4 h on 2 cores for CIFAR-10), paper-small (GPU)")
    p.add_argument("--datasets", default="cifar10", help="comma-separated: cifar10, tiny-imagenet-32, imagefolder:PATH")
    p.add_argument("--only", action="append", default=None, metavar="PATTERN", help="run only these entries (repeatable, wildcards)")
    p.add_argument("--exclude", action="append", default=None, metavar="PATTERN", help="skip these entries (repeatable)")
    p.add_argument("--out", default=None, help="output directory (default results/<profile>/)")
    p.add_argument("--data-root", default=None, help="real datasets (default $NOISEVISION_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.suite import run_suite

    summary = run_suite(
        args.profile, datasets=args.datasets, out=args.out, only=args.only, exclude=args.exclude,
        data_root=args.data_root, seed=args.seed, device=args.device, progress=args.progress,
    )
    out = args.out or f"results/{args.profile}"
    print((Path(out) / "results.md").read_text())
    for s in summary["datasets"]:
        rho = "n/a" if s["spearman_vs_paper"] is None else f"{s['spearman_vs_paper']:.2f}"
        gap = "n/a" if s["gap_closure"] is None else f"{100 * s['gap_closure']:.0f}%"
        print(f"{s['dataset']}: Spearman vs paper {rho}; gap closure {gap} (best: {s['best_entry']})")
    print(f"charts and tables in {out}/")
    return 0


# ------------------------------------------------------------------ export / analyze (flags built from their configs)


def _add_export_analyze_parsers(sub: argparse._SubParsersAction) -> None:
    from .configflags import add_config_flags, config_values
    from .eval.analyze import AnalyzeConfig, analyze, summary_lines
    from .train.export import ExportConfig, export

    p = sub.add_parser(
        "export", help="write a run's backbone as .safetensors (torchvision key names for ResNets)",
        description="Export the backbone of a pretrain run (no projection head) as one .safetensors file; "
        "ResNets use torchvision's key names, so torchvision/timm models load it with strict=False.",
    )
    add_config_flags(p, ExportConfig)

    def run_export(args: argparse.Namespace) -> int:
        result = export(config_values(args, ExportConfig, "export"))
        meta = result["metadata"]
        print(f"wrote {result['path']}: {meta['arch']} backbone, {result['tensors']} tensors, "
              f"{result['parameters']:,} parameters, naming {meta['naming']}")
        print(f"  {meta['compatibility_note']}")
        return 0

    p.set_defaults(func=run_export)

    p = sub.add_parser(
        "analyze", help="measure a dataset: spectrum, colour, orientation, sparsity, diversity, FID/KID",
        description="Image statistics of a dataset (a seeded subset) and, with --reference, its Fréchet "
        "distance and KID to real images; writes JSON and a picture sheet.",
    )
    add_config_flags(p, AnalyzeConfig)

    def run_analyze(args: argparse.Namespace) -> int:
        result = analyze(config_values(args, AnalyzeConfig, "analyze"))
        print("\n".join(summary_lines(result)))
        for key in ("json", "sheet"):
            if key in result:
                print(f"wrote {result[key]}")
        return 0

    p.set_defaults(func=run_analyze)


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
    _add_export_analyze_parsers(sub)
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
