"""``noisevision sweep``: one generator parameter (or the number of images) over a list of values.

Each value becomes one entry of the comparison suite (:mod:`noisevision.comparison.suite`):
the generator with that parameter set (``Entry.generator_params``), or with that many
images (the profile's ``generator_num_images``, so every value trains for about the
same number of steps, as the suite's entries do). Generation, pretraining and probing
therefore run through the suite's cached pipeline: a re-run skips finished values and
resumes an interrupted one, and an ``--out`` shared with a ``compare`` run reuses its
work where the settings agree. ``include_default`` adds the generator as the profile
runs it (its default random range) as a reference point, and ``include_random`` the
random-init encoder (the suite's floor, probed only) as the level a pretraining has to beat.

Outputs in ``out``::
    sweep.json               the config, the points and one row per value and dataset
    sweep.md                 a table per dataset; with the default run, each value's difference
                             from it with a 95% interval over the test images; with ``analyze``,
                             each value's dataset statistics
    sweep_<dataset>.png      accuracy against the value (the default dashed, random init dotted)
    entries/ runs/ data/     the suite's cache

>>> sweep(profile="cpu", generator="stat/spectrum", param="exponent_range",          # doctest: +SKIP
...       values=["1,1", "2,2", "3,3"], include_default=True, out="results/sweep-spectrum")
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..accel import select_device
from ..data.roots import list_datasets
from ..errors import UserError
from ..fileio import atomic_write_text, prepare_output_dir, write_json
from ..generators import dynamic_prefixes, fast_overrides, get_spec, list_generators
from ..parsing import coerce, load_yaml, make_config, resolve_params
from ..plotting import pyplot, save_png
from .paper import PAPER_ROWS, RANDOM_KEY
from .report import aggregate, markdown_table, statistics_table
from .stats import paired_difference
from .suite import (
    ENTRY_SETTINGS,
    Entry,
    EvalDataset,
    Profile,
    SuiteRun,
    check_datasets,
    get_profile,
    list_profiles,
    parse_datasets,
    suite_entry,
)

NUM_IMAGES = "num_images"
RANDOM_LABEL = "random init"  # the label of the random-init floor's rows
FLOOR_METRICS = ("top1", "top1_bn", "knn")  # the floor row's columns, mean ± sd over its seeds
DIFFERENCE_METRICS = ("top1", "knn")  # compared with the default, image by image
PLOT_METRICS = (("top1", "linear probe top-1", "tab:blue"), ("knn", "kNN top-1", "tab:orange"))  # one panel each


@dataclass(frozen=True)
class SweepConfig:
    """A sweep (``noisevision sweep`` has a flag per field, named like it)."""

    profile: str = field(default="quick", metadata={
        "help": "the budget: a profile of configs/compare/ or a profile FILE.yaml (default quick)",
        "names": list_profiles})
    generator: str = field(default="", metadata={
        "help": "the generator whose parameter is swept", "names": list_generators, "required": True})
    param: str = field(default="", metadata={
        "help": f"the generator parameter to sweep (see `noisevision list -v`), or {NUM_IMAGES}", "required": True})
    values: tuple[Any, ...] = field(default=(), metadata={
        "help": "the values, space-separated; a range parameter takes LOW,HIGH (e.g. 2,2 fixes it)",
        "nargs": "+", "metavar": "VALUE", "required": True})
    datasets: str = field(default="cifar10", metadata={
        "help": "comma-separated evaluation datasets (default cifar10)", "names": list_datasets})
    include_default: bool = field(default=False, metadata={
        "help": "also run the generator as the profile runs it (its default range / image count) as a reference"})
    include_random: bool = field(default=False, metadata={
        "help": "also probe the random-init encoder (the profile's random-init seeds) as the floor to beat"})
    analyze: bool | None = field(default=None, metadata={
        "help": "also measure each value's data (noisevision analyze) against each dataset (default: the "
                "profile's analyze)"})
    out: str | None = field(default=None, metadata={
        "help": "output directory (default results/sweep-<profile>-<generator>-<param>/)"})
    data_root: str | None = field(default=None, metadata={"help": "real datasets (default $NOISEVISION_DATA)"})
    seed: int = field(default=0, metadata={"help": "root seed of every run (default 0)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (default auto)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if not self.generator:
            raise ValueError("pass --generator (see `noisevision list`)")
        if not self.param:
            raise ValueError(f"pass --param (a parameter of {self.generator}, or {NUM_IMAGES})")
        values = (self.values,) if isinstance(self.values, (str, int, float)) else tuple(self.values)
        values = tuple(_value_text(v) for v in values)
        if not values or any(not v for v in values):
            raise ValueError("pass --values (one or more, space-separated)")
        duplicate = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if duplicate is not None:
            raise ValueError(f"value {duplicate!r} is given twice in --values")
        object.__setattr__(self, "values", values)
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        slug = self.generator.replace("/", "-").replace(":", "-").replace("+", "-")
        return Path("results") / f"sweep-{get_profile(self.profile).name}-{slug}-{self.param}"


def _value_text(value: Any) -> str:
    """One value as the text the CLI takes: ``(2, 2)`` -> ``"2,2"``, ``2.0`` -> ``"2"``."""
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip()


@dataclass(frozen=True)
class SweepPoint:
    """One value of the sweep: its label, its position on the plot's axis (None: not a number), and what
    it changes (generator parameters, or the number of images)."""

    label: str
    x: float | None
    params: dict[str, Any] = field(default_factory=dict)
    num_images: int | None = None
    default: bool = False


def _position(value: Any) -> float | None:
    """The value as a number on the plot's axis: a number, or a range whose ends are equal; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value) \
            and len(set(value)) == 1:
        return float(value[0])
    return None


def sweep_points(profile: Profile, generator: str, param: str, values: Sequence[str],
                 include_default: bool = False) -> list[SweepPoint]:
    """The points of a sweep, each value parsed and checked against the generator's parameters.

    Raises:
        UserError: unknown generator or parameter (with a did-you-mean), a value of the wrong type or
            out of its range, an image count smaller than the profile's batch, or a generator that needs
            a setting a sweep does not give it.
    """
    if any(generator.startswith(prefix) for prefix in dynamic_prefixes()):
        raise UserError(f"sweep takes a registered generator (see `noisevision list`), not the combinator "
                        f"{generator!r}")
    spec = get_spec(generator)
    base = fast_overrides(generator) if profile.fast_generators else {}
    points = []
    if param == NUM_IMAGES:
        default_n = profile.generator_num_images.get(generator, profile.num_images)
        for text in values:
            try:
                n = coerce(text, int, NUM_IMAGES)
            except (TypeError, ValueError) as exc:
                raise UserError(f"sweep: bad value {text!r} for {NUM_IMAGES}: {exc}") from None
            if n < profile.batch_size:
                raise UserError(f"sweep: {NUM_IMAGES} {n} is smaller than the profile's batch of {profile.batch_size}; "
                                f"use at least {profile.batch_size} images")
            points.append(SweepPoint(str(n), float(n), num_images=n, default=include_default and n == default_n))
        if include_default and not any(p.default for p in points):
            points.append(SweepPoint(f"default ({default_n})", float(default_n), num_images=default_n, default=True))
        _check_required(spec, resolve_params(spec.params_cls, spec.defaults, base, generator), generator)
        return points
    for text in values:
        params = resolve_params(spec.params_cls, spec.defaults, {**base, param: text}, f"sweep of {generator}")
        _check_required(spec, params, generator)
        value = getattr(params, param)
        points.append(SweepPoint(_value_text(value), _position(value), params={param: value}))
    if include_default:
        value = getattr(resolve_params(spec.params_cls, spec.defaults, base, generator), param)
        points.append(SweepPoint(f"default ({_value_text(value)})", None, default=True))
    return points


def _check_required(spec: Any, params: Any, generator: str) -> None:
    missing = [r for r in spec.required if getattr(params, r) in (None, "")]
    if missing:
        raise UserError(f"{generator} needs {', '.join(missing)}, which a sweep does not set; sweep another "
                        "generator, or run it with `noisevision compare`")


def sweep_entry(generator: str, point: SweepPoint) -> Entry:
    """The suite entry of one point: the generator's own suite entry (its family and class count, so the
    default point is the suite's entry) with the point's parameters."""
    row = PAPER_ROWS.get(generator)
    family = row.group if row is not None else get_spec(generator).family
    per_class = ENTRY_SETTINGS.get(generator, {}).get("images_per_class")
    return Entry(generator, family, generator_params=dict(point.params), images_per_class=per_class)


def point_profile(profile: Profile, generator: str, point: SweepPoint) -> Profile:
    """The profile a point runs under: the given one, or with the generator's image count set to the point's."""
    if point.num_images is None:
        return profile
    return dataclasses.replace(profile, generator_num_images={**profile.generator_num_images,
                                                              generator: point.num_images})


def sweep(config: SweepConfig | Mapping[str, Any] | str | os.PathLike | None = None, /,
          **fields: Any) -> dict[str, Any]:
    """Run (or resume) a sweep; write sweep.json, sweep.md and one plot per dataset into ``out``.

    ``config`` is a :class:`SweepConfig`, a mapping or a YAML file of its fields; ``fields``
    override it. ``values`` is a sequence (a string is split at spaces). Returns the contents
    of sweep.json.

    Raises:
        UserError: unknown profile, generator, parameter or dataset, a bad value, or an ``out`` that
            is a file or cannot be written.
    """
    if isinstance(config, (str, os.PathLike)):
        config = load_yaml(config)
    if isinstance(config, Mapping):
        fields, config = {**config, **fields}, None
    if isinstance(fields.get("values"), str):
        fields["values"] = fields["values"].split()
    cfg = make_config(SweepConfig, config, fields, "sweep")
    profile = get_profile(cfg.profile)
    points = sweep_points(profile, cfg.generator, cfg.param, cfg.values, cfg.include_default)
    datasets = parse_datasets(cfg.datasets)
    check_datasets(datasets, cfg.data_root)  # a bad --datasets fails now, not after the first value's work
    select_device(cfg.device)  # so does a device this machine lacks
    out = cfg.out_dir
    prepare_output_dir(out)
    rows = []
    analyze = profile.analyze if cfg.analyze is None else cfg.analyze
    for point in points:
        run = SuiteRun(point_profile(profile, cfg.generator, point), out, data_root=cfg.data_root,
                       device=cfg.device, progress=cfg.progress, analyze=analyze)
        for row in run.run_entry(sweep_entry(cfg.generator, point), datasets, cfg.seed):
            rows.append({**row, "param": cfg.param, "value": point.label, "x": point.x, "default": point.default})
    if cfg.include_random:
        rows += random_floor_rows(profile, cfg, out, datasets)
    rows = with_differences_from_default(rows)
    resolved = {**dataclasses.asdict(cfg), "values": list(cfg.values), "out": str(out)}
    result = {"config": resolved, "profile": profile.name, "generator": cfg.generator, "param": cfg.param,
              "datasets": [d.name for d in datasets],
              "points": [{"label": p.label, "x": p.x, "default": p.default, "params": p.params,
                          "num_images": p.num_images} for p in points],
              "rows": rows}
    write_json(out / "sweep.json", result)
    atomic_write_text(out / "sweep.md", sweep_markdown(result))
    for ds in datasets:
        plot_sweep(result, ds, out / f"sweep_{ds.slug}.png")
    return result


def random_floor_rows(profile: Profile, cfg: SweepConfig, out: Path, datasets: Sequence[EvalDataset]
                      ) -> list[dict[str, Any]]:
    """The random-init encoder's rows (``floor: True``) for the sweep's seed and, where the profile runs
    random init with spread seeds, for those too: the suite's floor, probed in ``out`` (or found there)."""
    entry = suite_entry(RANDOM_KEY)
    run = SuiteRun(profile, out, data_root=cfg.data_root, device=cfg.device, progress=cfg.progress)
    return [{**row, "param": cfg.param, "value": RANDOM_LABEL, "x": None, "default": False, "floor": True}
            for s in profile.seeds_of(RANDOM_KEY, cfg.seed) for row in run.run_entry(entry, datasets, s)]


# ------------------------------------------------------------------ report


def _rows_of(result: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The swept (and default) rows of ``dataset``, without the random-init floor."""
    return [r for r in result["rows"] if r["dataset"] == dataset and not r.get("floor")]


def floor_of(result: Mapping[str, Any], dataset: str) -> dict[str, Any] | None:
    """The random-init floor of ``dataset``: each metric's mean and sd over its seeds (the comparison's
    :func:`~noisevision.comparison.report.aggregate`), or None."""
    rows = [r for r in result["rows"] if r["dataset"] == dataset and r.get("floor")]
    return aggregate(rows)[0] if rows else None


def _floor_row(floor: Mapping[str, Any]) -> dict[str, Any]:
    """The floor as a table row: ``mean ± sd`` per metric over its seeds."""
    def text(m: str) -> str | None:
        if floor.get(m) is None:
            return None
        sd = floor.get(f"{m}_std")
        return f"{floor[m]:.1f}" + ("" if sd is None else f" ± {sd:.1f}")

    seeds = floor["seeds"]
    label = f"{RANDOM_LABEL} (seed {seeds[0]})" if len(seeds) == 1 else f"{RANDOM_LABEL} ({len(seeds)} seeds)"
    return {"value": label, **{m: text(m) for m in FLOOR_METRICS}}


def with_differences_from_default(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``<metric>_vs_default`` (points above the default on the same test images, with a
    95% interval; see :func:`~noisevision.comparison.stats.paired_difference`) on each non-default
    row whose dataset has a default row with per-image outcomes."""
    defaults = {r["dataset"]: r for r in rows if r["default"]}
    out = []
    for r in rows:
        ref = defaults.get(r["dataset"])
        extra = {}
        if ref is not None and not r["default"] and not r.get("floor"):
            for m in DIFFERENCE_METRICS:
                d = paired_difference(r, ref, m)
                if d is not None:
                    extra[f"{m}_vs_default"] = d
        out.append({**r, **extra})
    return out


def _difference_text(d: Mapping[str, Any] | None) -> str | None:
    return None if d is None else f"{d['diff']:+.1f} ({d['low']:+.1f} to {d['high']:+.1f})"


def _best_sentence(result: Mapping[str, Any], best: Mapping[str, Any], floor: Mapping[str, Any] | None) -> str:
    """The value with the best linear top-1, whether it is within test-image noise of the default, and
    how far it is above random init."""
    notes = [f"{best['top1']:.1f}% linear top-1"]
    d = best.get("top1_vs_default")
    if d is not None and d["low"] <= 0.0 <= d["high"]:
        notes.append("within test-image noise of the default")
    if floor is not None and floor.get("top1") is not None:
        notes.append(f"{best['top1'] - floor['top1']:+.1f} against random init")
    return f"Best: {result['param']} = {best['value']} ({'; '.join(notes)})."


def sweep_markdown(result: Mapping[str, Any]) -> str:
    """The sweep's tables, one per dataset: with differences from the default and the random-init floor
    where they were run."""
    lines = [f"# Sweep of {result['generator']}: {result['param']} ({result['profile']} profile)", ""]
    for dataset in result["datasets"]:
        rows = _rows_of(result, dataset)
        floor = floor_of(result, dataset)
        columns = ["value", "top1", "top1_bn", "knn"]
        headers = [result["param"], "linear top-1 (%)", "BN re-estimated (%)", "kNN top-1 (%)"]
        has_differences = any(f"{m}_vs_default" in r for r in rows for m in DIFFERENCE_METRICS)
        if has_differences:
            columns += [f"{m}_diff" for m in DIFFERENCE_METRICS]
            headers += ["linear - default (95% CI)", "kNN - default (95% CI)"]
        shown = [{**r, **{f"{m}_diff": _difference_text(r.get(f"{m}_vs_default")) for m in DIFFERENCE_METRICS}}
                 for r in rows] + ([_floor_row(floor)] if floor is not None else [])
        table = markdown_table(shown, [*columns, "pretrain_seconds"], [*headers, "pretrain (s)"])
        lines += [f"## {dataset}", "", table]
        if has_differences:
            lines += ["Differences are paired over the same test images; the interval covers the sampling of "
                      "test images only, and a second training seed moves a result by more.", ""]
        best = max((r for r in rows if r.get("top1") is not None), key=lambda r: r["top1"], default=None)
        if best is not None:
            lines += [_best_sentence(result, best, floor), ""]
        analysed = [r for r in rows if r.get("analysis") and r.get("top1") is not None]
        if analysed:
            lines += [f"Statistics of each value's data (`noisevision analyze` on a seeded subset; FID and KID "
                      f"against {dataset}'s training images):", "",
                      statistics_table(analysed, "value", result["param"])]
    return "\n".join(lines)


def plot_sweep(result: Mapping[str, Any], dataset: EvalDataset, path: Path) -> None:
    """Linear-probe and kNN top-1 against the value, one panel each (their differences are a few points,
    their levels far apart); the default and random init, if run, as dashed and dotted lines, random
    init's seed sd as a band.

    Values that are all numbers (a range with equal ends counts as its number) share a numeric axis
    (logarithmic for image counts spanning 10x or more); otherwise each value is one tick.
    """
    plt = pyplot()
    rows = _rows_of(result, dataset.name)
    floor = floor_of(result, dataset.name)
    default = next((r for r in rows if r["default"]), None)
    swept = [r for r in rows if not r["default"] or result["param"] == NUM_IMAGES]
    numeric = all(r["x"] is not None for r in swept)
    if numeric:
        swept.sort(key=lambda r: r["x"])
        xs = [r["x"] for r in swept]
    else:
        swept = rows  # the default is one more tick
        xs = list(range(len(swept)))
    fig, axes = plt.subplots(1, len(PLOT_METRICS), figsize=(10, 4))
    for ax, (key, label, color) in zip(axes, PLOT_METRICS):
        ys = [r.get(key) if r.get(key) is not None else math.nan for r in swept]
        ax.plot(xs, ys, marker="o", color=color, label=result["param"])
        if numeric and default is not None and result["param"] != NUM_IMAGES and default.get(key) is not None:
            ax.axhline(default[key], color=color, ls="--", lw=1, label=default["value"])
        if floor is not None and floor.get(key) is not None:
            ax.axhline(floor[key], color="0.3", ls=":", lw=1, label=RANDOM_LABEL)
            if floor.get(f"{key}_std"):
                sd = floor[f"{key}_std"]
                ax.axhspan(floor[key] - sd, floor[key] + sd, color="0.5", alpha=0.15, lw=0,
                           label=f"{RANDOM_LABEL}, ± 1 seed sd")
        if numeric and result["param"] == NUM_IMAGES and xs and max(xs) >= 10 * min(xs):
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xs, [r["value"] for r in swept], rotation=30, ha="right")
        ax.set_xlabel(result["param"])
        ax.set_ylabel(f"{label} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['generator']} on {dataset.name} ({result['profile']} profile)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=120)
