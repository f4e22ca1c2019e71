"""``noisevision export``: a trained backbone as one ``.safetensors`` file that plain PyTorch can load.

What is exported (the *backbone*: everything up to the features a classifier sees):

* ResNet-18/50: every stage (stem, layer1..layer4) in **torchvision's key names**
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.bn1``, ...,
  ``layer2.0.downsample.0``/``.1``), BatchNorm buffers included
  (``running_mean``, ``running_var``, ``num_batches_tracked``). Only the
  classifier ``fc`` is absent, so ``torchvision.models.resnet18()`` or
  ``timm.create_model("resnet18")`` load it with ``strict=False`` and report
  exactly ``fc.weight`` and ``fc.bias`` as missing. The SSL projection head is
  not part of our encoder and is never exported.
* SmallAlexNet: ``conv1..conv5`` and ``fc6`` (the probe layer), in our own
  naming ``models.smallalexnet.SMALLALEXNET_NAMING`` (``conv{i}.weight``, ``bn{i}.*``,
  ``fc6.weight``, ``bn6.*``). ``fc7``/``fc8`` are the projection that the
  contrastive loss sees (``embedding_is_projected``), so they are left out.

Compatibility with torchvision is a matter of shapes as well as names:
``width != 1`` changes every shape, and the CIFAR stem (3x3/1 ``conv1``, no
max-pool) gives ``conv1.weight`` the shape (64, 3, 3, 3) instead of (64, 3, 7, 7).
Such files say ``torchvision_compatible: false`` in their metadata, with the fix
in ``compatibility_note`` (replace ``model.conv1`` and ``model.maxpool`` first).

The header metadata (``safetensors`` allows only string values; JSON where
structured) records ``format``, ``format_version``, ``arch``, ``arch_kwargs``,
``naming``, ``num_features``, ``input_size``, ``normalization`` (mean/std the
encoder was trained with), ``noisevision_version``, ``torch_version``,
``source`` and the run's training ``config``.

>>> from noisevision.train.export import export, load_exported, build_backbone
>>> export(run="runs/dl", out="dl_resnet18.safetensors")                 # doctest: +SKIP
>>> state, meta = load_exported("dl_resnet18.safetensors")                # doctest: +SKIP
>>> backbone = build_backbone("dl_resnet18.safetensors")                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .._version import __version__
from ..errors import UserError
from ..eval.features import normalization_for
from ..fileio import atomic_path
from ..models import Encoder, create_encoder
from ..models.base import EXPORT_NAMINGS, ExportNaming
from ..models.checkpoint import RUN_DIR_FILE, _plain, build_on_meta, load_encoder, state_dict_mismatch
from ..parsing import make_config

FORMAT = "noisevision-backbone"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"


def naming_for(encoder: Encoder) -> ExportNaming:
    """The naming scheme the encoder declares (``export_naming``)."""
    if encoder.export_naming is None:
        raise UserError(f"encoder {encoder.arch!r} declares no export naming, so it cannot be exported")
    return encoder.export_naming


@dataclass(frozen=True)
class ExportConfig:
    """``noisevision export``: which run to export and where to (flags have the same names)."""

    run: str = field(default="", metadata={
        "help": "a pretrain run directory (holding encoder.pt) or an encoder.pt file", "positional": True,
        "required": True})
    out: str = field(default="", metadata={
        "help": "the .safetensors file to write (replaced atomically if it exists)", "flags": ("--out", "-o"),
        "metavar": "FILE.safetensors", "required": True})

    def __post_init__(self) -> None:
        for name in ("run", "out"):
            if isinstance(getattr(self, name), os.PathLike):  # pathlib paths are welcome from Python
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        if not isinstance(self.run, str) or not self.run:
            raise ValueError("name the run to export: a pretrain run directory or its encoder.pt")
        if not isinstance(self.out, str) or Path(self.out).suffix != SUFFIX:
            raise ValueError(f"out must name a {SUFFIX} file, got {self.out!r}")


def backbone_state_dict(encoder: Encoder) -> tuple[dict[str, torch.Tensor], ExportNaming]:
    """The backbone's tensors under their exported names (contiguous CPU copies, dtypes kept)."""
    naming = naming_for(encoder)
    state: dict[str, torch.Tensor] = {}
    for key, value in encoder.state_dict().items():
        name = naming.export_key(key)
        if name is not None:
            state[name] = value.detach().to("cpu", copy=True).contiguous()
    return state, naming


def _open_run(run: str) -> tuple[Encoder, dict, Path]:
    """Load the encoder of a run directory or encoder.pt, with one-line errors for anything else."""
    path = Path(run).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: pass a pretrain run directory or its encoder.pt")
    if path.is_dir():
        if not (path / RUN_DIR_FILE).is_file():
            if (path / "checkpoint.pt").is_file():
                raise UserError(f"run {path} has no {RUN_DIR_FILE} yet (training has not finished); "
                                "export it when the run is complete")
            raise UserError(f"{path} is not a pretrain run directory (no {RUN_DIR_FILE} in it)")
        path = path / RUN_DIR_FILE
    encoder, meta = load_encoder(path)
    return encoder, meta, path


def export(config: ExportConfig | Mapping[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
    """Write the backbone of a run as ``config.out`` (see the module docstring); ``config`` is an
    :class:`ExportConfig` or a mapping of its fields, ``fields`` override it.

    Returns:
        ``{"path", "tensors", "parameters", "metadata"}`` describing the written file.
    Raises:
        UserError: a path that is not a run or encoder.pt, an unreadable checkpoint, an
            architecture without a naming scheme, or an unwritable ``out``.
    """
    cfg = make_config(ExportConfig, config, fields, "export")
    out = Path(cfg.out).expanduser()
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name a {SUFFIX} file")
    encoder, meta, source = _open_run(cfg.run)
    state, naming = backbone_state_dict(encoder)
    compatible, note = encoder.export_compatibility()
    preset, mean, std = normalization_for(meta)
    num_features = encoder.num_features
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "arch": encoder.arch,
        "arch_kwargs": json.dumps(_plain(encoder.arch_kwargs), sort_keys=True),
        "naming": naming.name,
        "num_features": str(num_features),
        "input_size": str(encoder.input_size),
        "torchvision_compatible": "true" if compatible else "false",
        "compatibility_note": note,
        "normalization": json.dumps({"preset": preset, "mean": list(mean), "std": list(std)}),
        "noisevision_version": __version__,
        "torch_version": torch.__version__,
        "source": str(source.resolve()),
        "config": json.dumps(_plain(meta.get("config")), sort_keys=True, default=str),
    }
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    parameters = sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running_" not in k)
    return {"path": str(out), "tensors": len(state), "parameters": int(parameters), "metadata": metadata}


def load_exported(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a file written by :func:`export`: ``(state_dict in the exported names, metadata)``.

    safetensors checks the header against the file size before anything is
    allocated, and the file holds no code, so this is safe on untrusted files.

    Raises:
        UserError: missing file, not a safetensors file (or a truncated one), not a
            noisevision backbone, or a newer format version.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"exported backbone {path} not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # noqa: BLE001  (SafetensorError, OSError, ...: all mean "not readable")
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read {path} as a safetensors file: {detail}") from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not a noisevision backbone export (no format={FORMAT!r})")
    version = metadata.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise UserError(f"{path} has backbone format version {version!r}; this noisevision reads up to {FORMAT_VERSION}")
    return state, metadata


def build_backbone(path: str | os.PathLike) -> Encoder:
    """Our encoder rebuilt from an exported file, holding exactly the exported stages, in eval mode.

    ``forward`` then returns the backbone features (a ResNet's pooled features,
    SmallAlexNet's fc6); ``features(x, layer)`` works for the layers that remain.

    Raises:
        UserError: see :func:`load_exported`, plus unknown naming or weights that do not fit.
    """
    state, metadata = load_exported(path)
    naming = EXPORT_NAMINGS.get(metadata.get("naming", ""))
    if naming is None:
        raise UserError(f"{path} uses naming {metadata.get('naming')!r}, unknown to this noisevision")
    try:
        arch_kwargs = json.loads(metadata.get("arch_kwargs", "{}"))
    except json.JSONDecodeError:
        raise UserError(f"{path} has unreadable arch_kwargs metadata") from None
    if not isinstance(arch_kwargs, dict):
        raise UserError(f"{path} has arch_kwargs metadata that is not a mapping")
    try:
        num_features = int(metadata.get("num_features", 0))
    except ValueError:
        raise UserError(f"{path} has num_features metadata that is not a number") from None
    arch = metadata.get("arch", "")

    def as_backbone(encoder: Encoder) -> Encoder:
        for stage in naming.dropped:
            del encoder.stages[stage]
        encoder.layer_names = tuple(n for n in encoder.layer_names if n in encoder.stages)
        encoder.out_dim = num_features or encoder.out_dim
        encoder.embedding_is_projected = False
        return encoder

    ours: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = naming.our_key(key)
        if name is None:
            raise UserError(f"{path} holds {key!r}, which is not part of a {arch!r} backbone")
        ours[name] = value
    # Checked on the meta device first, so metadata asking for a huge model costs nothing; compared in
    # the file's own key names, which are the ones a user sees.
    expected = as_backbone(build_on_meta(arch, arch_kwargs, path)).state_dict()
    mismatch = state_dict_mismatch({naming.export_key(k) or k: v for k, v in expected.items()}, state)
    if mismatch is not None:
        raise UserError(f"weights in {path} do not fit a {arch!r} backbone with {arch_kwargs}: {mismatch}")
    encoder = as_backbone(create_encoder(arch, **arch_kwargs))
    encoder.load_state_dict(ours, strict=True)
    return encoder.eval()
