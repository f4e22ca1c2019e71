"""One-off migration of committed comparison results to the portable cache keys (issue 14).

Until 0.1.0 a generator entry's cache key hashed the package version, and the
entry JSONs carried absolute paths of the machine that ran them. The keys no
longer hash the version and the suite writes paths relative to the output
folder (the evaluation dataset's folder as its name). This renames the entry
JSONs of a results folder from the old keys to the new ones, strips their
absolute paths, and points rows.jsonl at the new files. Nothing is trained or
probed again; running it twice changes nothing.

    python bench/rekey_results.py docs/results/cpu-390 --profile cpu-390 --datasets cifar10
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from noisevision.comparison.suite import Entry, SuiteRun, _entry, get_profile, parse_datasets, select_entries
from noisevision.fileio import atomic_write_text, write_json

OLD_VERSION = "0.1.0"


class _OldKeys(SuiteRun):
    """The suite as it keyed datasets before: with the package version in the generator's key."""

    def generator_config(self, entry: Entry, seed: int) -> dict[str, Any]:
        return {**super().generator_config(entry, seed), "version": OLD_VERSION}


def _renamed_dirs(old_run: SuiteRun, new_run: SuiteRun, entry: Entry, ds: Any, seed: int) -> dict[str, str]:
    """Old -> new names of the run and data directories an entry's result mentions (its own, its dependency's)."""
    names: dict[str, str] = {}
    for e in [entry] + ([_entry(entry.needs)] if entry.needs else []):
        if e.kind == "random":
            continue
        source = ds if e.kind == "real" else None
        (old_dir, old_cfg), (new_dir, new_cfg) = old_run.run_dir_for(e, source, seed), new_run.run_dir_for(e, source, seed)
        names[old_dir.name] = new_dir.name
        if e.kind == "generator":
            names[Path(old_cfg["data"]).name] = Path(new_cfg["data"]).name
    return names


def rekey(out: Path, profile: str, datasets: str, data_root: str | None = None) -> dict[str, str]:
    """Move every entry JSON under ``out`` from its old key to its new one; return {old: new} (relative)."""
    prof = get_profile(profile)
    old_run, new_run = _OldKeys(prof, out, data_root=data_root), SuiteRun(prof, out, data_root=data_root)
    moved: dict[str, str] = {}
    for entry in select_entries(prof):
        seeds = [0] + (list(prof.spread_seeds) if entry.key in prof.spread_entries else [])
        for seed in seeds:
            dsets = parse_datasets(datasets)
            old = [(ds, enc) for evals, enc, _, _ in old_run.encoders(entry, dsets, seed) for ds in evals]
            new = [(ds, enc) for evals, enc, _, _ in new_run.encoders(entry, dsets, seed) for ds in evals]
            for (ds, old_enc), (_, new_enc) in zip(old, new):
                src, dst = old_run.probe_path(entry, ds, old_enc, seed), new_run.probe_path(entry, ds, new_enc, seed)
                if not src.exists():
                    continue
                result = json.loads(src.read_text())
                result = new_run.portable_result(result, result.get("dataset", {}).get("path"), ds.name)
                text = json.dumps(result)
                # the results folder as it lay on the machine that ran it (another checkout, another --out)
                text = re.sub(r'"(/[^"]*/)?' + re.escape(out.name) + r'/(runs|data|entries)/', r'"\2/', text)
                for before, after in _renamed_dirs(old_run, new_run, entry, ds, seed).items():
                    text = text.replace(before, after)
                write_json(dst, json.loads(text))
                if src != dst:
                    src.unlink()
                moved[str(src.relative_to(out))] = str(dst.relative_to(out))
    rows_path = out / "rows.jsonl"
    if rows_path.exists():
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        for row in rows:
            row["result_file"] = moved.get(row["result_file"], row["result_file"])
        atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a results folder, e.g. docs/results/cpu-390")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--datasets", default="cifar10")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    moved = rekey(args.out, args.profile, args.datasets, args.data_root)
    renamed = sum(old != new for old, new in moved.items())
    print(f"{len(moved)} entry results rewritten, {renamed} renamed to the new keys")


if __name__ == "__main__":
    main()
