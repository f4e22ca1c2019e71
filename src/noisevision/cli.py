"""Command-line interface: thin wrappers, one API call per subcommand.

:data:`COMMANDS` lists the subcommands. Each verb of the API (``generate``,
``preview``, ``pretrain``, ``probe``, ``compare``, ``sweep``, ``export``,
``analyze``) builds its flags from the config dataclass it calls (a flag per
field, named like it, help text from the field's metadata, choices from the
registries) and takes ``--config FILE.yaml``: the YAML first, flags on top.
User mistakes raise :class:`noisevision.UserError`, printed as one line
(``noisevision: error: ...``) with exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._version import __version__
from .comparison.report import dataset_headlines
from .comparison.suite import CompareConfig, compare, get_profile
from .comparison.sweep import SweepConfig, sweep
from .data.manifest import read_manifest
from .data.writer import GenerateConfig, generate, verify_dataset
from .errors import UserError
from .eval.analyze import AnalyzeConfig, analyze, summary_lines
from .eval.probe import ProbeConfig, probe, summary_table
from .generators import dynamic_prefixes, get_spec, list_generators
from .generators.base import params_to_dict
from .parsing import check_field_names, load_yaml, make_config, parse_kv
from .sheets import PreviewConfig, preview
from .train.config import PretrainConfig, build_config
from .train.export import ExportConfig, export
from .train.loop import pretrain, summary_line

# ------------------------------------------------------------------ flags from config dataclasses


def add_config_flags(p: argparse.ArgumentParser, cls: type) -> None:
    """``--config FILE.yaml`` and one flag per field of the dataclass ``cls``.

    Field metadata: ``help``; ``choices`` / ``names`` (a sequence or a registry's
    ``list_*`` function): the allowed / known values, listed in the help;
    ``flags`` renames the flag (aliases after the first); ``positional`` makes it
    an optional positional argument; ``append`` makes it repeatable; ``nargs`` takes several values after
    one flag (``--values 1 2 3``). Every
    default is None ("not given"), so YAML values survive unless a flag is passed.
    """
    p.add_argument("--config", dest="config_file", metavar="FILE.yaml",
                   help="YAML file of these settings (flags override it)")
    for f in dataclasses.fields(cls):
        meta, kind = f.metadata, str(f.type)
        help_ = meta.get("help", "")
        # Known values come from the registries when the parser is built; the config checks the value
        # (with a did-you-mean), so a typo gets the same one-line error from the CLI and the API.
        for key, label in (("choices", "one of"), ("names", "known")):
            known = meta.get(key)
            if known is not None:
                help_ += f" ({label}: {', '.join(known() if callable(known) else known)})"
        if meta.get("positional"):
            p.add_argument(f.name, nargs="?", default=None, help=help_)
            continue
        flags = meta.get("flags", (f"--{f.name.replace('_', '-')}",))
        if kind.startswith("bool"):  # --x / --no-x, so a flag can undo a YAML value
            p.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind.startswith("dict") and meta.get("flags"):
            p.add_argument(*flags, dest=f.name, action="append", metavar="KEY=VALUE", default=None, help=help_)
        elif kind.startswith("dict"):
            p.add_argument(*flags, dest=f.name, nargs="+", metavar="KEY=VALUE", default=None, help=help_)
        elif meta.get("nargs"):
            p.add_argument(*flags, dest=f.name, nargs=meta["nargs"], default=None,
                           metavar=meta.get("metavar", f.name.upper()), help=help_)
        elif meta.get("append"):
            p.add_argument(*flags, dest=f.name, action="append", default=None,
                           metavar=meta.get("metavar", f.name.upper()), help=help_)
        else:  # strings; the config coerces them to the field types
            p.add_argument(*flags, dest=f.name, default=None,
                           metavar=meta.get("metavar", f.name.split("_")[-1].upper()), help=help_)


def config_values(args: argparse.Namespace, cls: type, command: str) -> dict[str, Any]:
    """The YAML of ``--config`` with the given flags on top; UserError when a required field is missing."""
    values = load_yaml(args.config_file) if args.config_file else {}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    check_field_names(cls, values, command)  # a misspelt key before "needs --x", which it may be the cause of
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is None:
            continue
        if str(f.type).startswith("dict"):
            given = parse_kv(given, f.name, typed=f.metadata.get("typed", True))
        values[f.name] = given
    for f in dataclasses.fields(cls):
        if f.metadata.get("required") and values.get(f.name) in (None, ""):
            flag = f"the {f.name} argument" if f.metadata.get("positional") else \
                f.metadata.get("flags", (f"--{f.name.replace('_', '-')}",))[0]
            raise UserError(f"{command} needs {flag} (or {f.name}: in --config)")
    return values


# ------------------------------------------------------------------ what each verb prints


def _run_list(args: argparse.Namespace) -> int:
    names = list_generators(args.pattern)
    if not names and args.pattern != "*":
        raise UserError(f"no generator matches {args.pattern!r}; run `noisevision list` to see them all")
    if not names:
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


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'stylegan/*'")
    p.add_argument("--verbose", "-v", action="store_true", help="also print every default parameter")


def _run_generate(args: argparse.Namespace) -> int:
    values = config_values(args, GenerateConfig, "generate")
    if not values.get("generator"):
        raise UserError("name a generator (see `noisevision list`)")
    result = generate(values)
    if result.repaired:
        print(f"re-rendered {len(result.repaired)} bucket(s) that failed verification: "
              + ", ".join(f"{b:05d}" for b in result.repaired))
    state = "complete" if result.complete else "this shard done; other shards still missing"
    print(
        f"{values['generator']}: rendered {result.rendered} images, {result.skipped} already there "
        f"({result.images_per_second:.1f} img/s) -> {result.out} [{state}]"
    )
    return 0


def _run_verify(args: argparse.Namespace) -> int:
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


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="the --out directory of a complete generate run")


def _run_preview(args: argparse.Namespace) -> int:
    values = config_values(args, PreviewConfig, "preview")
    paths = preview(values)
    print(f"wrote {len(paths)} contact sheets to {values['out']}" if values.get("all") else f"wrote {paths[0]}")
    return 0


def _run_pretrain(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)}
    summary = pretrain(build_config(args.config_file, overrides))
    if summary["rank"] == 0:
        print(summary_line(summary))
    return 0


def _run_probe(args: argparse.Namespace) -> int:
    values = config_values(args, ProbeConfig, "probe")
    print(summary_table(probe(values)))
    if values.get("out"):
        print(f"result written to {values['out']}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    cfg = make_config(CompareConfig, config_values(args, CompareConfig, "compare"), {}, "compare")
    summary = compare(cfg)
    out = cfg.out_dir
    print((out / "results.md").read_text())
    for s in summary["datasets"]:
        print("\n".join(dataset_headlines(s)))
    print(f"charts and tables in {out}/")
    note = get_profile(cfg.profile).note
    if note:
        print(f"\nWhat this shows: {note}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    result = sweep(config_values(args, SweepConfig, "sweep"))
    out = result["config"]["out"]
    print(Path(out, "sweep.md").read_text())
    print(f"table, plots and sweep.json in {out}/")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    result = export(config_values(args, ExportConfig, "export"))
    meta = result["metadata"]
    print(f"wrote {result['path']}: {meta['arch']} backbone, {result['tensors']} tensors, "
          f"{result['parameters']:,} parameters, naming {meta['naming']}")
    print(f"  {meta['compatibility_note']}")
    return 0


def _run_analyze(args: argparse.Namespace) -> int:
    result = analyze(config_values(args, AnalyzeConfig, "analyze"))
    print("\n".join(summary_lines(result)))
    for key in ("json", "sheet"):
        if key in result:
            print(f"wrote {result[key]}")
    return 0


# ------------------------------------------------------------------ the verbs


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: its flags come from ``config`` (a config dataclass) or from ``arguments``."""

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    config: type | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


# In the order ``noisevision --help`` lists them. A new verb is its runner above plus one row here.
COMMANDS: tuple[Command, ...] = (
    Command("list", "list the registered generators", "List the registered generators.",
            _run_list, arguments=_list_arguments),
    Command("generate", "write a synthetic image dataset",
            "Generate a dataset (ImageFolder JPEG/PNG or one packed .npy array); resumable, parallel, sharded.",
            _run_generate, GenerateConfig),
    Command("verify", "check a generated dataset against its checksums",
            "Recompute the checksum of every bucket of a generated dataset (and of its labels). "
            "Exit status 0 when all match; 2 with the list of what differs otherwise "
            "(repair: the same generate command plus --verify).",
            _run_verify, arguments=_verify_arguments),
    Command("preview", "write a labelled contact sheet of a generator",
            "Render a grid of images (a contact sheet PNG) of one generator, or of all with --all.",
            _run_preview, PreviewConfig),
    Command("pretrain", "pretrain an encoder on noise images: contrastive SSL, or supervised on generator labels",
            "Pretrain an encoder (YAML --config first, flags on top; flags are named like "
            "PretrainConfig fields). Multi-process: torchrun --nproc_per_node=K -m noisevision pretrain ...",
            _run_pretrain, PretrainConfig),
    Command("probe", "evaluate a frozen encoder on real images (linear probe, kNN, alignment/uniformity)",
            "Linear probe (fast: L-BFGS on cached features; paper: augmented Adam head), weighted kNN "
            "on the embedding, and alignment/uniformity, from one feature extraction. Writes a JSON result.",
            _run_probe, ProbeConfig),
    Command("compare", "reproduce the paper's comparison: generate, pretrain, probe every family",
            "Run (or resume) the comparison suite; writes per-entry JSON, results.md, bar charts "
            "and the resolved config.yaml.",
            _run_compare, CompareConfig),
    Command("sweep", "sweep one generator parameter (or the image count) through the comparison's pipeline",
            "Generate, pretrain and probe the generator once per value of one parameter (cached and "
            "resumable like compare); writes sweep.json, sweep.md and accuracy-against-value plots.",
            _run_sweep, SweepConfig),
    Command("export", "write a run's backbone as .safetensors (torchvision key names for ResNets)",
            "Export the backbone of a pretrain run (no projection head) as one .safetensors file; "
            "ResNets use torchvision's key names, so torchvision/timm models load it with strict=False.",
            _run_export, ExportConfig),
    Command("analyze", "measure a dataset: spectrum, colour, orientation, sparsity, diversity, FID/KID",
            "Image statistics of a dataset (a seeded subset) and, with --reference, its Fréchet "
            "distance and KID to real images; writes JSON and a picture sheet.",
            _run_analyze, AnalyzeConfig),
)


# ------------------------------------------------------------------ main

# Old subcommand names, accepted for one release with a note on stderr.
DEPRECATED_COMMANDS = {"bench": "compare"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noisevision",
        description="Train vision models without real images: generate noise datasets, pretrain, probe.",
    )
    parser.add_argument("--version", action="version", version=f"noisevision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        if command.config is not None:
            add_config_flags(p, command.config)
        if command.arguments is not None:
            command.arguments(p)
        # command_parser: so a stray argument is reported with that command's usage
        p.set_defaults(func=command.run, command_parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DEPRECATED_COMMANDS:
        new = DEPRECATED_COMMANDS[argv[0]]
        print(f"noisevision: note: `{argv[0]}` is now `{new}`; the old name goes in the next release",
              file=sys.stderr)
        argv[0] = new
    try:
        # Building the parser lists the registries (for the help), which imports plugins: inside the try.
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"noisevision: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noisevision: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
