"""The paper's comparison as one resumable suite: generate -> pretrain -> probe, per entry.

An *entry* is a generator (one bar of the paper's chart) or a baseline (random
init, or the same pretraining on the real training split). A *profile* fixes
the budget (image count and size, encoder, method, epochs, probe). Every step's
output lives in a directory keyed by a hash of its resolved configuration, so a
re-run skips finished work and resumes unfinished pretraining; changing any
setting changes the key instead of silently reusing stale results.

Outputs under ``out`` (default ``results/<profile>/``)::
    entries/<entry>/<dataset>.json     one probe result per entry and dataset
    analysis/<data>/<dataset>.json     dataset statistics of a generator entry's data (profile ``analyze``)
    runs/<entry>-<hash>/               pretraining run directories (resumable)
    data/<generator>-<hash>/           generated datasets (npy)
    rows.jsonl                         flat rows, one per entry and dataset
    results.md, chart_<dataset>.png    written by the report step
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..accel import check_pinnable_precision, pinned_precision, select_device
from ..data.imagefolder import available_splits, scan_image_folder
from ..data.roots import default_test_split, folder_of, list_datasets, resolve_dataset
from ..data.writer import generate_dataset
from ..errors import UserError, did_you_mean
from ..eval import probe
from ..eval.analyze import ANALYSIS_VERSION, DEFAULT_ENCODER, analyze
from ..eval.probe import PROTOCOLS
from ..fileio import atomic_write_text, prepare_output_dir, read_json_lines, read_json_object, write_json
from ..generators import fast_overrides, generator_revision
from ..models import spec_kind
from ..parsing import load_yaml, make_config, resolve_params
from ..resources import max_workers
from ..train import PretrainConfig, check_model_settings, pretrain
from .paper import BEYOND_PAPER, FDSL_GENERATORS, PAPER_FAMILIES, PAPER_ROWS, RANDOM_KEY, REAL_KEY, SUPERVISED_SUFFIX
from .report import write_report
from .stats import row_outcomes

__all__ = ["BEYOND_PAPER", "FDSL_GENERATORS", "PAPER_FAMILIES", "RANDOM_KEY", "REAL_KEY", "CompareConfig", "Entry", "Profile",
           "compare", "get_profile", "list_profiles", "paper_suite", "run_suite", "select_entries"]

# ------------------------------------------------------------------ entries


@dataclass(frozen=True)
class Entry:
    """One bar of the comparison."""

    key: str  # generator name, or "baseline/random-init" / "baseline/real"
    family: str  # the chart's bar group (comparison/paper.py)
    kind: str = "generator"  # "generator" | "random" | "real"
    paper_top1: float | None = None  # the paper's small-scale ImageNet-100 top-1
    paper_family: bool = False  # one of the paper's 14 families: counted in the rank correlation with the paper
    generator_params: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # entry whose encoder this one uses (feature-vis of a trained net)
    generator: str = ""  # the generator of its data; "" = the key (two entries may share one generator's data)
    method: str | None = None  # pretraining method; None = the profile's
    method_kwargs: dict[str, Any] = field(default_factory=dict)  # only with ``method``
    images_per_class: int | None = None  # labelled generators: num_classes = images // this (at least 2)

    def __post_init__(self) -> None:
        if not self.generator:
            object.__setattr__(self, "generator", self.key)
        if self.method_kwargs and self.method is None:
            raise ValueError(f"entry {self.key}: method_kwargs need a method")

    @property
    def slug(self) -> str:
        return _slug(self.key)


def _slug(name: str) -> str:
    return name.replace("/", "_").replace(":", "_").replace("+", "_").replace("@", "_")


# The paper's "feature vis, dead leaves": maximise units of the encoder pretrained on dead leaves.
FEATURE_VIS_SOURCE = "dead-leaves/mixed"


# Formula-driven (FDSL) entries: 100 images per class, so the cpu profile's 10k images make 100 classes (the
# papers' 1k-class sets hold 1000 per class; at 10 per class a 390-step run would see each image a few times).
# Both variants of a generator render the same data; the ``@supervised`` one trains on its labels.
FDSL_IMAGES_PER_CLASS = 100
ENTRY_SETTINGS: dict[str, dict[str, Any]] = {
    "feature-vis/checkpoint": {"needs": FEATURE_VIS_SOURCE},
    **{gen: {"images_per_class": FDSL_IMAGES_PER_CLASS} for gen in FDSL_GENERATORS},
    **{gen + SUPERVISED_SUFFIX: {"generator": gen, "method": "supervised", "images_per_class": FDSL_IMAGES_PER_CLASS}
       for gen in FDSL_GENERATORS},
}


def paper_suite() -> list[Entry]:
    """Every paper family, the beyond-paper generators, the FDSL group and the two baselines (the rows of
    ``comparison/paper.py``, baselines first and last; settings beyond the paper's row in ``ENTRY_SETTINGS``)."""
    kinds = {RANDOM_KEY: "random", REAL_KEY: "real"}
    return [Entry(key, row.group, kind=kinds.get(key, "generator"), paper_top1=row.top1,
                  paper_family=row.paper_family, **ENTRY_SETTINGS.get(key, {}))
            for key, row in PAPER_ROWS.items()]


def entry_matches(entry: Entry, pattern: str) -> bool:
    """Whether a ``--only`` / ``--exclude`` pattern (wildcards allowed) names the entry: its key
    (``stylegan/*``), its group (``fdsl``), or its group and key (``fdsl/*``)."""
    import fnmatch

    return any(fnmatch.fnmatchcase(name, pattern) for name in (entry.key, entry.family, f"{entry.family}/{entry.key}"))


# ------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Profile:
    """The budget of a suite run; the shipped ones, with their reasons, are ``configs/compare/*.yaml``."""

    name: str
    num_images: int
    image_size: int
    crop_size: int
    arch: str
    method: str
    epochs: int
    batch_size: int
    lr: float
    aug: str = "small"
    lr_schedule: str = "step"  # "cosine" keeps short runs of different epoch counts on the same per-step schedule
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    entries: tuple[str, ...] | None = None  # None: the whole suite
    exclude: tuple[str, ...] = ()  # patterns of entries left out of the profile's suite (as --exclude)
    fast_generators: bool = True  # use each generator's CPU-friendly settings (feature-vis steps...)
    generator_num_images: dict[str, int] = field(default_factory=dict)  # smaller sets for slow generators
    probe_protocol: str = "fast"
    probe_image_size: int = 32
    probe_max_train: int | None = None
    probe_max_test: int | None = None
    probe_bn_recalibrate: bool = False  # also probe with BatchNorm statistics re-estimated on the probe's images
    spread_entries: tuple[str, ...] = ()  # also run these entries with spread_seeds (the seed-to-seed spread)
    spread_seeds: tuple[int, ...] = ()
    gen_workers: int = 2  # generation processes, at most the CPUs this machine gives the process
    analyze: bool = False  # also measure each generator entry's data (noisevision analyze) against each dataset
    analyze_images: int = 500  # the seeded subset of the data analysed (and of the reference's train split)
    # "fp32" pins the numbers to full precision on every machine (a suite run in pieces may resume on a CPU
    # with AMX, where "auto" picks bf16); like the device, it is not part of the cache keys
    precision: str = "auto"
    description: str = ""
    note: str = ""  # one plain sentence: what a run of this size can and cannot show (printed after the table)

    def seeds_of(self, entry_key: str, seed: int, extra_seeds: Sequence[int] = ()) -> list[int]:
        """The seeds an entry runs with: ``seed``, the spread seeds if it is a spread entry, then ``extra_seeds``."""
        spread = self.spread_seeds if entry_key in self.spread_entries else ()
        return list(dict.fromkeys([seed, *spread, *extra_seeds]))

    def __post_init__(self) -> None:
        smallest = min([self.num_images, *self.generator_num_images.values()])
        if self.batch_size > smallest:
            raise ValueError(f"batch_size {self.batch_size} is more than the {smallest} images of a dataset; "
                             "lower batch_size or raise num_images")
        if self.gen_workers < 1:
            raise ValueError(f"gen_workers must be at least 1, got {self.gen_workers}")
        if self.probe_protocol not in PROTOCOLS:
            raise ValueError(f"probe_protocol must be one of {', '.join(PROTOCOLS)}, got {self.probe_protocol!r}")
        if not 2 <= self.analyze_images <= 100_000:
            raise ValueError(f"analyze_images must be in 2..100000, got {self.analyze_images}")
        check_pinnable_precision(self.precision)


PROFILE_DIR = Path(__file__).resolve().parents[1] / "configs" / "compare"


def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``noisevision/configs/compare/`` (``quick``, ``cpu``, ...)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def get_profile(name: str | os.PathLike) -> Profile:
    """A profile by name (``configs/compare/<name>.yaml``) or from a YAML file's path.

    Raises:
        UserError: unknown name, missing file, or a field that is unknown or out of range.
    """
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        if str(name) not in list_profiles():
            raise UserError(f"unknown profile {str(name)!r}{did_you_mean(str(name), list_profiles())}; "
                            f"choose from {', '.join(list_profiles())} or pass a profile FILE.yaml")
        path = PROFILE_DIR / f"{name}.yaml"
    values = load_yaml(path)
    return resolve_params(Profile, {"name": path.stem}, values, f"profile {path.name}")


def select_entries(
    profile: Profile, only: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> list[Entry]:
    """The profile's entries (its ``entries`` less its ``exclude``), or the suite's entries that ``only``
    names, less those ``exclude`` names; a pattern matches a key, a group or ``group/key`` (wildcards allowed)."""
    suite = paper_suite()
    keys = [e.key for e in suite]
    if profile.entries is not None:
        suite = [e for e in suite if e.key in profile.entries]
    suite = [e for e in suite if not any(entry_matches(e, p) for p in profile.exclude)]
    for pattern in list(profile.exclude) + list(only or []) + list(exclude or []):
        if not any(entry_matches(e, pattern) for e in paper_suite()):
            names = keys + sorted({e.family for e in paper_suite()})
            raise UserError(f"no suite entry matches {pattern!r}{did_you_mean(pattern, names)}")
    if only:
        suite = [e for e in paper_suite() if any(entry_matches(e, p) for p in only)]
    if exclude:
        suite = [e for e in suite if not any(entry_matches(e, p) for p in exclude)]
    if not suite:
        raise UserError("the selection leaves no entry to run")
    return suite


# ------------------------------------------------------------------ datasets


@dataclass(frozen=True)
class EvalDataset:
    """An evaluation dataset of the comparison and the splits it is probed on."""

    name: str  # as passed to the probe: a registered dataset or imagefolder:<path>
    train_split: str
    test_split: str

    @property
    def slug(self) -> str:
        folder = folder_of(self.name)
        if folder is not None:
            return "folder_" + folder.name + "_" + _hash(str(folder.resolve()))[:6]
        return self.name


def parse_datasets(spec: str) -> list[EvalDataset]:
    """``cifar10,tiny-imagenet-32`` -> one EvalDataset each (train split, the dataset's test split)."""
    out = []
    for name in [s.strip() for s in spec.split(",") if s.strip()]:
        out.append(EvalDataset(name, "train", default_test_split(name)))
    if not out:
        raise UserError("--datasets is empty")
    return out


def check_datasets(datasets: Sequence[EvalDataset], data_root: str | None) -> None:
    """Find every evaluation dataset and its splits before any work (UserError otherwise).

    Resolving a named dataset unpacks (or downloads) it as the probe would later.
    """
    for ds in datasets:
        source = resolve_dataset(ds.name, data_root)
        if source.kind != "imagefolder":
            continue  # the official CIFAR-10 batches hold both splits
        splits = available_splits(source.path)
        missing = [s for s in (ds.train_split, ds.test_split) if s not in splits]
        if missing:
            raise UserError(
                f"dataset {ds.name} ({source.path}) has no {missing[0]!r} split (found: {', '.join(splits) or 'none'}); "
                f"the suite needs {source.path}/{ds.train_split} and {source.path}/{ds.test_split}"
            )


# ------------------------------------------------------------------ running


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class SuiteRun:
    """Drives one profile over entries and datasets; every step is cached on disk."""

    profile: Profile
    out: Path
    data_root: str | None = None
    device: str = "auto"
    progress: bool = True
    # (entry, seed) pairs whose encoder an entry still to probe uses (feature-vis of the same seed's encoder)
    dependencies: frozenset[tuple[str, int]] = frozenset()
    analyze: bool = False  # also measure each generator entry's data against every evaluation dataset
    report_only: bool = False  # read what is on disk; never generate, train, probe or analyse

    # ---------------------------------------------------------------- data

    def generator_overrides(self, entry: Entry, seed: int) -> dict[str, Any]:
        """The entry's generator parameters (with the encoder checkpoint it depends on)."""
        over: dict[str, Any] = {}
        if self.profile.fast_generators:
            over.update(fast_overrides(entry.generator))
        if entry.images_per_class:
            over["num_classes"] = max(2, self.num_images(entry) // entry.images_per_class)
        over.update(entry.generator_params)
        if entry.needs:
            dep_dir, _ = self.run_dir_for(suite_entry(entry.needs), None, seed)
            over["checkpoint"] = str(dep_dir / "encoder.pt")
        return over

    def num_images(self, entry: Entry) -> int:
        """How many images a generator entry's data holds (the profile's count, or its per-generator one)."""
        return self.profile.generator_num_images.get(entry.generator, self.profile.num_images)

    # ---------------------------------------------------------------- steps

    def pretrain_config(self, entry: Entry, data: str, seed: int, num_images: int | None = None) -> dict[str, Any]:
        """The pretraining config; a dataset of another size gets its epochs scaled so every entry takes
        (about) the same number of steps."""
        p = self.profile
        epochs = p.epochs if not num_images else max(1, round(p.epochs * p.num_images / num_images))
        cfg = dict(
            data=data, crop_size=p.crop_size, image_size=p.image_size if entry.kind != "real" else None,
            arch=p.arch, arch_kwargs=dict(p.arch_kwargs), method=entry.method or p.method, aug=p.aug, epochs=epochs,
            batch_size=p.batch_size, lr=p.lr, lr_schedule=p.lr_schedule, seed=seed, device=self.device,
        )
        if entry.method_kwargs:  # only when given, so the cache keys of the other entries stay as they were
            cfg["method_kwargs"] = dict(entry.method_kwargs)
        return cfg

    def check_settings(self, entries: Sequence[Entry]) -> None:
        """Refuse (UserError) pretraining settings of the profile or an entry that ``pretrain`` would refuse,
        before the first entry's work rather than after it."""
        for entry in entries:
            if entry.kind == "random":
                continue
            where = f"profile {self.profile.name}, entry {entry.key}"
            config = make_config(PretrainConfig, self.pretrain_config(entry, "", 0), {}, where)
            check_model_settings(config)

    def encoders(self, entry: Entry, datasets: Sequence[EvalDataset], seed: int
                 ) -> Iterator[tuple[list[EvalDataset], str, Path | None, dict[str, Any] | None]]:
        """(evaluation datasets, encoder, run directory, pretraining config) for each encoder of an entry.

        One encoder serves every dataset, except the real-data baseline, which
        pretrains on each evaluation dataset's own training split. Random init has
        no run directory.
        """
        sources = [(d, [d]) for d in datasets] if entry.kind == "real" else [(None, list(datasets))]
        for source, evals in sources:
            if entry.kind == "random":
                yield evals, self.random_encoder(), None, None
            else:
                run_dir, cfg = self.run_dir_for(entry, source, seed)
                yield evals, str(run_dir), run_dir, cfg

    def random_encoder(self) -> str:
        """The probe's spec of a randomly initialised encoder of the profile's architecture (and width)."""
        kwargs = ",".join(f"{k}={v}" for k, v in sorted(self.profile.arch_kwargs.items()))
        return f"random:{self.profile.arch}" + (f":{kwargs}" if kwargs else "")

    def probes_missing(self, entry: Entry, datasets: Sequence[EvalDataset], seed: int) -> bool:
        """Whether any probe result of the entry is not on disk yet."""
        return any(not self.probe_path(entry, ds, encoder, seed).exists()
                   for evals, encoder, _, _ in self.encoders(entry, datasets, seed) for ds in evals)

    def run_entry(self, entry: Entry, datasets: Sequence[EvalDataset], seed: int) -> list[dict[str, Any]]:
        """Pretrain (if needed) and probe one entry on every dataset; return its rows.

        Pretraining is skipped when every probe result of the entry is already on
        disk and no entry still to probe needs its encoder.
        """
        with pinned_precision(self.profile.precision):
            return self._run_entry(entry, datasets, seed)

    def _run_entry(self, entry: Entry, datasets: Sequence[EvalDataset], seed: int) -> list[dict[str, Any]]:
        rows = []
        for evals, encoder, run_dir, cfg in self.encoders(entry, datasets, seed):
            timings: dict[str, Any] = {}
            if run_dir is not None:
                needed = (entry.key, seed) in self.dependencies or any(
                    not self.probe_path(entry, ds, encoder, seed).exists() for ds in evals)
                if needed:
                    self.pretrain_entry(entry, cfg, run_dir)
                timings = self.timings(run_dir)
            for ds in evals:
                row = self.probe_entry(entry, ds, encoder, seed, timings)
                if entry.method:  # the report tells entries trained otherwise than with the profile's method
                    row["method"] = entry.method
                if self.analyze and entry.kind == "generator":
                    row["analysis"] = self.analyze_entry(entry, ds, seed)
                rows.append(row)
        return rows

    # ---------------------------------------------------------------- dataset statistics

    def analysis_path(self, entry: Entry, ds: EvalDataset, seed: int) -> Path:
        """Where the statistics of an entry's data against ``ds`` are cached: under the data's own key, so
        entries that share their data share their analysis."""
        key = dict(reference=ds.name, reference_split=ds.train_split, num_images=self.profile.analyze_images,
                   encoder=DEFAULT_ENCODER, seed=seed, version=ANALYSIS_VERSION)
        return self.out / "analysis" / self.data_key(entry, seed) / f"{ds.slug}-{_hash(key)}.json"

    def analyze_entry(self, entry: Entry, ds: EvalDataset, seed: int) -> dict[str, Any] | None:
        """The statistics (``noisevision analyze`` summary) of a seeded subset of the entry's data, with FID/KID
        to ``ds``'s training split; computed once and cached. None when neither the analysis nor the data is
        on disk (committed results hold no data, and generating it only for this is not worth the time)."""
        path = self.analysis_path(entry, ds, seed)
        if not path.exists() and self.report_only:
            return None
        if not path.exists():
            data = self.out / "data" / self.data_key(entry, seed)
            if not (data / "images.npy").is_file():
                _log(f"no statistics of {entry.key} on {ds.name}: its data is not on disk (it is generated only "
                     "when the entry is pretrained); the report shows them as missing")
                return None
            _log(f"analysing {self.profile.analyze_images} images of {entry.generator} against {ds.name}")
            result = analyze(data=str(data), reference=ds.name, reference_split=ds.train_split,
                             num_images=self.profile.analyze_images, seed=seed, encoder=DEFAULT_ENCODER,
                             data_root=self.data_root, sheet=False, device=self.device, progress=self.progress)
            result = self.portable_result(result, result["reference"]["path"], ds.name)
            write_json(path, result)
        return read_json_object(path, required=("summary",))["summary"]

    def portable_hash(self, obj: Any) -> str:
        """A cache key that does not depend on where ``--out`` or the data root lies.

        So committed results (``docs/results/``) are found again from any checkout.
        """
        text = json.dumps(obj, sort_keys=True, default=str)
        for prefix in sorted({str(self.out.resolve()), str(self.out)}, key=len, reverse=True):
            text = text.replace(prefix, "<out>")
        return _hash(text)

    def run_dir_for(self, entry: Entry, source: EvalDataset | None, seed: int) -> tuple[Path, dict[str, Any]]:
        """The run directory (keyed by the resolved pretraining config) and the config."""
        if entry.kind == "real":
            src = resolve_dataset(source.name, self.data_root)
            if src.kind != "imagefolder":
                raise UserError(f"the real-data baseline needs {source.name} as an image folder, found {src.kind}")
            data = str(src.path / source.train_split)
            portable_data = f"{source.name}/{source.train_split}"
            n = _count_images(data)  # scales its epochs so it takes as many steps as a synthetic entry
        else:
            portable_data = self.data_key(entry, seed)
            n = self.num_images(entry)
            data = str(self.out / "data" / portable_data)
        cfg = self.pretrain_config(entry, data, seed, n if n != self.profile.num_images else None)
        key = self.portable_hash({**cfg, "data": portable_data, "device": None})
        run_dir = self.out / "runs" / f"{entry.slug}{'-' + source.slug if source else ''}-s{seed}-{key}"
        return run_dir, cfg

    def generator_config(self, entry: Entry, seed: int) -> dict[str, Any]:
        """What defines a generator entry's dataset (its cache key): not the package version, not a path.

        A release that changes a generator's images bumps its revision (or changes its parameters or
        name), so results committed under one version are found again by the next unless its images
        changed. The first revision is left out of the key, which keeps the keys of earlier results.
        """
        config = {"generator": entry.generator, "params": self.generator_overrides(entry, seed),
                  "n": self.num_images(entry), "size": self.profile.image_size, "seed": seed}
        revision = generator_revision(entry.generator)
        return config if revision == 1 else {**config, "revision": revision}

    def data_key(self, entry: Entry, seed: int) -> str:
        """The folder name of a generator entry's data under ``data/``: entries of one generator with the
        same parameters (an FDSL generator with and without its labels) share it."""
        return f"{_slug(entry.generator)}-{self.portable_hash(self.generator_config(entry, seed))}"

    def portable_result(self, result: Any, dataset_path: str | None = None, dataset_name: str | None = None) -> Any:
        """``result`` with machine-specific paths made portable: paths under ``out`` become relative to it,
        the evaluation dataset's folder becomes the dataset's name (so committed JSONs name no machine)."""
        prefixes = [(p, "") for p in sorted({str(self.out.resolve()), str(self.out)}, key=len, reverse=True)]
        if dataset_path and dataset_name:
            prefixes.insert(0, (str(dataset_path), dataset_name))
        if self.data_root:
            prefixes += [(str(Path(self.data_root).resolve()), "$NOISEVISION_DATA"), (str(self.data_root), "$NOISEVISION_DATA")]

        def fix(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: fix(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fix(v) for v in value]
            if isinstance(value, str):
                for prefix, replacement in prefixes:
                    if value == prefix:
                        return replacement or "."
                    if value.startswith(prefix + "/"):
                        rest = value[len(prefix) + 1:]
                        return f"{replacement}/{rest}" if replacement else rest
            return value

        return fix(result)

    def pretrain_entry(self, entry: Entry, cfg: dict[str, Any], run_dir: Path) -> None:
        """Generate the data (if a generator entry) and pretrain, resuming what a previous run left."""
        if (run_dir / "summary.json").exists():
            return
        if entry.kind == "generator":
            gen = self.generate(entry, Path(cfg["data"]), cfg["seed"])
            if gen["gen_seconds"] is not None:  # keep the first (complete) generation's timing
                write_json(run_dir / TIMINGS_FILE, gen)
        _log(f"pretraining {entry.key} (seed {cfg['seed']}) -> {run_dir}")
        resume = (run_dir / "config.yaml").exists()
        pretrain(PretrainConfig(**cfg, out=str(run_dir), resume=resume, progress=self.progress))

    def timings(self, run_dir: Path) -> dict[str, Any]:
        """Generation and pretraining time of a run directory, for the table (empty if not run here)."""
        out: dict[str, Any] = {}
        if (run_dir / TIMINGS_FILE).exists():
            out.update(read_json_object(run_dir / TIMINGS_FILE))
        if (run_dir / "summary.json").exists():
            summary = read_json_object(run_dir / "summary.json")
            out.update(_pretrain_timing(summary, self.profile.batch_size, run_dir / "metrics.jsonl"))
            out["pretrain_precision"] = summary.get("precision")
        return {k: v for k, v in out.items() if v is not None}

    def generate(self, entry: Entry, path: Path, seed: int) -> dict[str, Any]:
        over = self.generator_overrides(entry, seed)
        n = self.num_images(entry)
        _log(f"generating {n} images of {entry.generator} -> {path}")
        res = generate_dataset(entry.generator, n, self.profile.image_size, path, seed=seed, format="npy", params=over,
                               workers=min(self.profile.gen_workers, max_workers()), device=self.device,
                               progress=self.progress)
        return {"gen_seconds": round(res.seconds, 1) if res.rendered else None,
                "gen_images_per_s": round(res.images_per_second, 1) if res.rendered else None}

    def probe_path(self, entry: Entry, ds: EvalDataset, encoder: str, seed: int) -> Path:
        key = self.probe_config(ds, encoder, seed)
        if self.profile.probe_bn_recalibrate:
            key["also_bn_recalibrated"] = True
        return self.out / "entries" / entry.slug / f"{ds.slug}-s{seed}-{_hash(key)}.json"

    def probe_config(self, ds: EvalDataset, encoder: str, seed: int) -> dict[str, Any]:
        p = self.profile
        enc = encoder if spec_kind(encoder) is not None else str(Path(encoder).relative_to(self.out))
        return dict(encoder=enc, dataset=ds.name, train_split=ds.train_split, test_split=ds.test_split,
                    protocol=p.probe_protocol, image_size=p.probe_image_size, max_train=p.probe_max_train,
                    max_test=p.probe_max_test, seed=seed)

    def probe_entry(self, entry: Entry, ds: EvalDataset, encoder: str, seed: int,
                    timings: dict[str, Any] | None = None) -> dict[str, Any]:
        """Probe (or read the cached probe of) one encoder; the entry's timings are stored with the result."""
        path = self.probe_path(entry, ds, encoder, seed)
        timings = timings or {}
        if path.exists():
            result = read_json_object(path, required=("metrics",))
            # Fill in timings the result lacks (its data was generated elsewhere, say), never replace one: a run
            # trained again because a fresh machine lost the cache is not the run this result probed.
            stored = result.setdefault("suite", {})
            missing = {k: v for k, v in timings.items() if stored.get(k) is None}
            if missing:
                stored.update(missing)
                write_json(path, result)
        else:
            _log(f"probing {entry.key} on {ds.name}")
            cfg = self.probe_config(ds, encoder, seed)
            cfg["encoder"] = encoder
            result = probe(**cfg, data_root=self.data_root, device=self.device, out=None, progress=self.progress)
            if self.profile.probe_bn_recalibrate:
                # The encoder's BatchNorm statistics come from its (synthetic) training images; re-estimated on
                # the probe's real images they often score higher, so the table shows both.
                _log(f"probing {entry.key} on {ds.name} with BatchNorm statistics re-estimated")
                bn = probe(**cfg, bn_recalibrate=True, align_images=0, data_root=self.data_root, device=self.device,
                           out=None, progress=self.progress)
                result["bn_recalibrated"] = {"metrics": {k: bn["metrics"][k] for k in BN_METRICS},
                                             "bn_recalibrate": bn["bn_recalibrate"], "timings_s": bn["timings_s"],
                                             "per_image": bn["per_image"]}
            result["suite"] = {"entry": entry.key, "family": entry.family, "profile": self.profile.name, **timings}
            result = self.portable_result(result, result["dataset"]["path"], ds.name)
            write_json(path, result)
        m = result["metrics"]
        row = {
            "entry": entry.key, "family": entry.family, "kind": entry.kind, "dataset": ds.name, "seed": seed,
            "top1": m.get("top1"), "top5": m.get("top5"), "knn": m.get("knn_top1"),
            "alignment": m.get("alignment"), "uniformity": m.get("uniformity"),
            "top1_bn": result.get("bn_recalibrated", {}).get("metrics", {}).get("top1"),
            "paper_top1": entry.paper_top1, "paper_family": entry.paper_family, "profile": self.profile.name,
            "result_file": str(path.relative_to(self.out)),
        }
        row.update({k: result["suite"][k] for k in TIMING_KEYS if k in result["suite"]})
        row["precision"] = {"pretrain": result["suite"].get("pretrain_precision"), "probe": result.get("amp_dtype")}
        outcomes = row_outcomes(result)
        if outcomes:  # results probed before per-image outcomes were kept have none
            row["outcomes"] = outcomes
        probe_s = [r.get("timings_s", {}).get("total_s") for r in (result, result.get("bn_recalibrated", {}))]
        row["probe_seconds"] = round(sum(t for t in probe_s if t), 1)
        return row


BN_METRICS = ("top1", "top5", "knn_top1")
TIMINGS_FILE = "suite_timings.json"
TIMING_KEYS = ("gen_seconds", "gen_images_per_s", "pretrain_seconds", "pretrain_images_per_s")


def _pretrain_timing(summary: dict[str, Any], batch_size: int,
                     metrics: Path | None = None) -> dict[str, float | None]:
    """Training time and speed of a run from its summary (and metric lines, for a resumed run).

    ``wall_s`` counts only the last process, so for a resumed run the time is summed over the logged
    intervals of every process (steps x batch / logged images/s), startup excluded. Older summaries lack
    ``images_per_s``: their wall time is the whole run.
    """
    wall, steps = summary.get("wall_s"), summary.get("steps")
    batch = summary.get("batch_size", batch_size)
    if not wall or not steps:
        return {"pretrain_seconds": wall, "pretrain_images_per_s": None}
    last_speed = summary.get("images_per_s")
    resumed = last_speed is not None and last_speed * wall < 0.99 * steps * batch
    if resumed and metrics is not None and metrics.exists():
        seconds, prev = 0.0, 0
        for m in read_json_lines(metrics):
            if not isinstance(m.get("step"), (int, float)):
                continue
            if m.get("images_per_s"):
                seconds += (m["step"] - prev) * batch / m["images_per_s"]
            prev = m["step"]
        seconds += (steps - prev) * batch / last_speed  # after the last logged line
        return {"pretrain_seconds": round(seconds, 1), "pretrain_images_per_s": round(steps * batch / seconds, 1)}
    if resumed:
        return {"pretrain_seconds": round(steps * batch / last_speed, 1), "pretrain_images_per_s": last_speed}
    return {"pretrain_seconds": wall, "pretrain_images_per_s": round(steps * batch / wall, 1)}


SUITES = ("paper",)


@dataclass(frozen=True)
class CompareConfig:
    """A comparison run (``noisevision compare`` has a flag per field, named like it)."""

    profile: str = field(default="quick", metadata={
        "help": "a profile of configs/compare/ or a profile FILE.yaml", "names": list_profiles})
    datasets: str = field(default="cifar10", metadata={
        "help": "comma-separated evaluation datasets", "names": list_datasets})
    only: tuple[str, ...] | None = field(default=None, metadata={
        "help": "run only these entries (repeatable, wildcards)", "append": True, "metavar": "PATTERN"})
    exclude: tuple[str, ...] | None = field(default=None, metadata={
        "help": "skip these entries (repeatable, wildcards)", "append": True, "metavar": "PATTERN"})
    out: str | None = field(default=None, metadata={"help": "output directory (default results/<profile>/)"})
    data_root: str | None = field(default=None, metadata={"help": "real datasets (default $NOISEVISION_DATA)"})
    seed: int = field(default=0, metadata={"help": "root seed of every entry (default 0)"})
    extra_seeds: tuple[int, ...] = field(default=(), metadata={
        "help": "also run every selected entry with these seeds, comma-separated (the profile's spread entries "
                "run its spread seeds anyway); the report averages each entry over its seeds", "metavar": "SEEDS"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (default auto)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    suite: str = field(default="paper", metadata={"help": "which suite (default: paper)", "choices": SUITES})
    analyze: bool | None = field(default=None, metadata={
        "help": "also measure each generator entry's data (noisevision analyze) against each dataset and relate "
                "the statistics to accuracy in the report (default: the profile's analyze)"})
    report_only: bool = field(default=False, metadata={
        "help": "rebuild the table, report and charts from the results already in --out, without generating, "
                "training or probing; the report lists the entries not run yet"})

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        if self.seed < 0 or any(s < 0 for s in self.extra_seeds):
            raise ValueError(f"seeds must be non-negative, got {self.seed} and extra seeds {list(self.extra_seeds)}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("results") / get_profile(self.profile).name)


def recorded_path(path: str | os.PathLike | None) -> str | None:
    """``path`` as a folder's ``config.yaml`` records it: relative to the working directory when it lies
    under it, so a committed results folder names no machine's paths and re-runs from a checkout's root."""
    if path is None:
        return None
    resolved, here = Path(path).expanduser().resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(path)


def compare(config: CompareConfig | dict[str, Any] | str | os.PathLike | None = None, /,
            **fields: Any) -> dict[str, Any]:
    """Run (or resume) the comparison; write its results, report and resolved ``config.yaml`` into ``out``.

    ``config`` is a :class:`CompareConfig`, a mapping or a YAML file of its fields; ``fields`` override it.
    Returns the report's summary (one entry per dataset, with the Spearman correlation and gap closure).

    Raises:
        UserError: unknown profile, entry pattern or dataset.
    """
    cfg = make_config(CompareConfig, config, fields, "compare")
    summary = run_suite(cfg.profile, datasets=cfg.datasets, out=cfg.out_dir, only=cfg.only, exclude=cfg.exclude,
                        data_root=cfg.data_root, seed=cfg.seed, extra_seeds=cfg.extra_seeds, device=cfg.device,
                        progress=cfg.progress, analyze=cfg.analyze, report_only=cfg.report_only)
    resolved = {**dataclasses.asdict(cfg), "out": recorded_path(cfg.out_dir), "data_root": recorded_path(cfg.data_root)}
    resolved = {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}
    atomic_write_text(cfg.out_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    return summary


def run_suite(
    profile: str = "quick",
    *,
    datasets: str = "cifar10",
    out: str | os.PathLike | None = None,
    only: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    data_root: str | None = None,
    seed: int = 0,
    extra_seeds: Sequence[int] = (),
    device: str = "auto",
    progress: bool = True,
    analyze: bool | None = None,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a profile; write rows.jsonl, results.md and charts; return the summary.

    Each entry runs with ``seed``, the profile's spread seeds if it is a spread entry, and ``extra_seeds``.

    ``analyze`` (None: the profile's) also measures each generator entry's data (cached under ``analysis/``).
    ``report_only`` reports the (entry, seed) runs whose results are all on disk and lists the others as not
    run yet, so a suite that runs in pieces can be read (and committed) between them.

    Raises:
        UserError: unknown profile, entry pattern or dataset, missing dataset, an ``out`` that is a file or
            cannot be written, or (``report_only``) no result on disk yet.
    """
    prof = get_profile(profile)
    entries = select_entries(prof, only, exclude)
    dsets = parse_datasets(datasets)
    check_datasets(dsets, data_root)  # a bad --datasets fails now, not after the first entry's work
    out_dir = Path(out or Path("results") / prof.name)
    if report_only and not out_dir.is_dir():  # reading only: create nothing
        raise UserError(f"no results of profile {prof.name!r} in {out_dir}: it is not a folder; pass the --out "
                        "the suite ran with")
    if not report_only:
        select_device(device)  # a device this machine lacks fails now, before any work or output
    run = SuiteRun(prof, out_dir, data_root=data_root, device=device, progress=progress,
                   analyze=prof.analyze if analyze is None else analyze, report_only=report_only)
    if not report_only:
        run.check_settings(entries)
    prepare_output_dir(out_dir)

    def seeds(entry: Entry) -> list[int]:
        return prof.seeds_of(entry.key, seed, extra_seeds)

    # An entry whose encoder another entry uses (feature-vis of the dead-leaves encoder of the same seed)
    # runs first; its encoder is only (re)built while a dependent entry still has probes to run, and a
    # dependency that is not selected runs unreported.
    deps = {e.needs for e in entries if e.needs}
    if not report_only:
        run.dependencies = frozenset((e.needs, s) for e in entries if e.needs for s in seeds(e)
                                     if run.probes_missing(e, dsets, s))
    order = sorted(entries, key=lambda e: 0 if e.key in deps else 1)
    selected_runs = {(e.key, s) for e in entries for s in seeds(e)}
    rows: list[dict[str, Any]] = []
    not_run: list[str] = []
    t0 = time.perf_counter()
    for dep, s in sorted(run.dependencies - selected_runs):  # only their encoders are needed, unreported
        entry = suite_entry(dep)
        run_dir, cfg = run.run_dir_for(entry, None, s)
        run.pretrain_entry(entry, cfg, run_dir)
    for entry in order:
        for s in seeds(entry):
            if report_only and run.probes_missing(entry, dsets, s):
                not_run.append(entry.key if s == seed else f"{entry.key} (seed {s})")
                continue
            rows.extend(run.run_entry(entry, dsets, s))
    if report_only and not rows:
        raise UserError(f"no results of profile {prof.name!r} in {out_dir} yet: run the suite there without "
                        "--report-only first")
    rows_path = out_dir / "rows.jsonl"
    atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))
    summary = write_report(rows, out_dir, prof.name, [d.name for d in dsets], prof.description, not_run=not_run)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


@functools.lru_cache(maxsize=None)
def _count_images(folder: str) -> int:
    return len(scan_image_folder(Path(folder))[1])


def suite_entry(key: str) -> Entry:
    """The suite's entry of ``key`` (``baseline/random-init``, ``stylegan/oriented``, ...)."""
    for e in paper_suite():
        if e.key == key:
            return e
    raise UserError(f"unknown suite entry {key!r}")
