"""The run directory: config, metrics and resumable training checkpoints.

Layout of ``RUN_DIR``::
    config.yaml      the resolved PretrainConfig
    checkpoint.pt    latest training state (model, optimizer, step, RNG states), written atomically
    encoder.pt       the final encoder (noisevision.models.save_encoder format)
    metrics.jsonl    one JSON line per logged step
    summary.json     the run summary, written when training ends
    curves.png       loss and monitor kNN top-1 against the step (with ``--monitor``), written at the end
    tb/              TensorBoard events (when tensorboard imports)

Checkpoints hold only plain types and tensors, so they load with
``torch.load(path, weights_only=True)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import UserError
from ..fileio import atomic_write_text, read_json_lines, user_os_error
from ..models.checkpoint import check_state_dict, read_versioned_torch_file, save_torch_file
from .config import PretrainConfig, build_config

CHECKPOINT_FORMAT = "noisevision-pretrain-checkpoint"
CHECKPOINT_VERSION = 1


class RunDir:
    """Paths and small file operations of one run directory."""

    # What a run directory may hold besides hidden temporaries; the bench suite keeps its timings there too.
    OWNED = frozenset({"config.yaml", "checkpoint.pt", "encoder.pt", "metrics.jsonl", "summary.json", "tb",
                       "curves.png", "suite_timings.json"})

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.checkpoint = self.root / "checkpoint.pt"
        self.encoder = self.root / "encoder.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.tensorboard = self.root / "tb"
        self.curves = self.root / "curves.png"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its config or a checkpoint)."""
        return self.config.is_file() or self.checkpoint.is_file()

    def foreign_entries(self) -> list[str]:
        """Names in the folder that a run does not write (sorted); empty if the folder does not exist."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.name not in self.OWNED and not (p.name.startswith(".") and p.name.endswith(".tmp")))

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporaries that a kill during an atomic write left (``.checkpoint.pt.<random>.tmp``...)."""
        removed = []
        for path in (self.config, self.checkpoint, self.encoder, self.metrics, self.summary, self.curves):
            for tmp in self.root.glob(f".{path.name}.*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
        return removed

    def write_config(self, config: PretrainConfig) -> None:
        atomic_write_text(self.config, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def read_config(self) -> PretrainConfig | None:
        """The saved config, or None if there is none."""
        if not self.config.is_file():
            return None
        return build_config(self.config)

    def trim_metrics(self, last_step: int) -> None:
        """Drop metric lines after ``last_step`` (written after the checkpoint a resumed run restarts from)."""
        if not self.metrics.is_file():
            return
        kept = [row for row in read_json_lines(self.metrics)
                if isinstance(row.get("step"), (int, float)) and row["step"] <= last_step]
        atomic_write_text(self.metrics, "".join(json.dumps(row) + "\n" for row in kept))

    def append_metrics(self, row: dict[str, Any]) -> None:
        try:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as exc:
            raise user_os_error(exc, self.metrics) from None


def rng_states() -> dict[str, Any]:
    """Global torch RNG states (CPU and CUDA), for the checkpoint."""
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: Path, *, config: PretrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    step: int, epoch: int, steps_per_epoch: int, lr: float, scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write the full training state atomically (a kill never leaves a half-written file)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        # The schedule is a pure function of (config, step): its state is the step.
        "scheduler": {"kind": config.lr_schedule, "step": step, "lr": lr},
        "scaler": scaler.state_dict() if scaler is not None else None,
        "step": step,
        "epoch": epoch,
        "steps_per_epoch": steps_per_epoch,
        "rng": rng_states(),
    }
    save_torch_file(path, state)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint (weights_only); UserError if it is damaged or foreign.

    Checks the structure the loop relies on (model and optimizer states, step
    counters, RNG state), so a bad file is a one-line error, not a traceback.
    """
    state = read_versioned_torch_file(path, "pretraining checkpoint", CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    check_state_dict(state.get("model"), path, "model")
    optimizer = state.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list):
        raise UserError(f"{path} is damaged: it holds no optimizer state")
    for key in ("step", "epoch", "steps_per_epoch"):
        value = state.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "steps_per_epoch" else 0):
            raise UserError(f"{path} is damaged: its {key} is {value!r}")
    rng = state.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor) or rng["torch"].dtype != torch.uint8:
        raise UserError(f"{path} is damaged: it holds no random-number state")
    if state.get("scaler") is not None and not isinstance(state["scaler"], dict):
        raise UserError(f"{path} is damaged: its scaler state is not a mapping")
    return state
