"""Feature visualisations: objective goes up, images independent, split invariance, checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import noisevision as nv
from noisevision.generators import feature_vis as fv

TINY = dict(arch="resnet18", width=0.25, steps=3, chunk=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions run faster on one thread of 2 shared cores


def test_render_deterministic_and_split_invariant() -> None:
    gen = nv.create_generator("feature-vis/random", **TINY)
    whole = gen.render(range(5), seed=0, size=16)
    assert whole.shape == (5, 16, 16, 3) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, gen.render(range(5), 0, 16))
    split = np.concatenate([gen.render([4], 0, 16), gen.render([3, 0, 1], 0, 16), gen.render([2], 0, 16)])
    np.testing.assert_array_equal(split, whole[[4, 3, 0, 1, 2]])
    # min-max normalised: each image spans the full range
    assert (whole.reshape(5, -1).min(axis=1) == 0).all() and (whole.reshape(5, -1).max(axis=1) == 255).all()
    assert not np.array_equal(whole, gen.render(range(5), 1, 16))


def test_optimisation_increases_target_units() -> None:
    params = nv.create_generator("feature-vis/random", arch="resnet18", width=0.25).params
    net = fv.load_network(params, seed=0, group=0)
    idx = np.array([0, 1, 300])  # two single units, one pair (resnet18 x0.25 has 128 units)
    units = torch.as_tensor(fv.target_units(idx, 0, params, num_units=128))
    assert units[0].tolist() == [0, 0] and units[1].tolist() == [1, 1] and units[2, 0] != units[2, 1]
    spectra = fv.init_spectra(idx, 0, 32)
    thetas = torch.as_tensor(fv.transform_thetas(idx, 0, steps=12, size=32))
    final, history = fv.optimise_spectra(net, "avgpool", units, spectra, thetas, lr=0.05)
    assert history.shape == (12, 3)

    def objective(coeffs):
        with torch.no_grad():
            acts = fv.layer_activation(net, fv._normalise(fv.spectra_to_rgb(coeffs)), "avgpool")
            return fv.unit_objective(acts, units)

    before, after = objective(spectra), objective(final)
    assert (after > before).all(), (before, after)
    assert (history[-3:].mean(0) > history[:3].mean(0)).all()


def test_images_in_a_chunk_do_not_interact() -> None:
    """BatchNorm in eval mode: an image's result does not depend on its neighbours."""
    params = nv.create_generator("feature-vis/random", arch="resnet18", width=0.25).params
    net = fv.load_network(params, 0, 0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    thetas = torch.as_tensor(fv.transform_thetas(np.arange(3), 0, steps=4, size=16))
    spectra = fv.init_spectra(np.arange(3), 0, 16)
    units = torch.tensor([[0, 0], [1, 1], [5, 9]])
    a, _ = fv.optimise_spectra(net, "avgpool", units[[0, 1]], spectra[[0, 1]], thetas[[0, 1]], 0.05)
    b, _ = fv.optimise_spectra(net, "avgpool", units[[0, 2]], spectra[[0, 2]], thetas[[0, 2]], 0.05)
    assert torch.equal(a[0], b[0])
    assert not net.training
    for k, v in net.state_dict().items():  # running statistics untouched
        assert torch.equal(v, state[k])


def test_random_network_seeded_and_global_rng_untouched() -> None:
    params = nv.create_generator("feature-vis/random", arch="resnet18", width=0.25, images_per_network=4).params
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fv._random_network.cache_clear()
    n0 = fv.load_network(params, 0, 0)
    assert torch.equal(torch.rand(3), expected)
    w = lambda net: net.stages["stem"][0].weight  # noqa: E731
    fv._random_network.cache_clear()
    assert torch.equal(w(fv.load_network(params, 0, 0)), w(n0))
    assert not torch.equal(w(fv.load_network(params, 0, 1)), w(n0))
    assert not torch.equal(w(fv.load_network(params, 1, 0)), w(n0))
    np.testing.assert_array_equal(fv.network_groups(np.array([0, 3, 4, 9]), params), [0, 0, 1, 2])
    # each network starts again with the single units
    np.testing.assert_array_equal(fv.target_units(np.array([5, 6]), 0, params, 10), [[1, 1], [2, 2]])


def test_parameterisation_and_transform_geometry() -> None:
    images = fv.spectra_to_rgb(fv.init_spectra(np.arange(2), 0, 24))
    assert images.shape == (2, 3, 24, 24)
    assert abs(images.mean().item() - 0.5) < 0.02 and images.std().item() < 0.05  # sd 0.01 start: near grey
    # identity transform (scale 1, no rotation, centred crops): the image padded by 6 with 0.5
    img = torch.rand(1, 3, 16, 16)
    out_size = fv.transformed_size(16)
    assert out_size == 28
    theta = torch.tensor([[[out_size / 16, 0.0, 0.0], [0.0, out_size / 16, 0.0]]])
    out = fv._transform(img, theta)
    torch.testing.assert_close(out[:, :, 6:-6, 6:-6], img, atol=1e-5, rtol=0)
    assert torch.allclose(out[:, :, :5], torch.tensor(0.5)) and torch.allclose(out[:, :, :, -5:], torch.tensor(0.5))
    thetas = fv.transform_thetas(np.arange(2), 0, steps=50, size=16)
    scales = np.sqrt(np.abs(np.linalg.det(thetas[..., :2]))) * 16 / out_size
    assert scales.min() > 1 / 1.1 - 1e-6 and scales.max() < 1 / 0.9 + 1e-6


def test_checkpoint_variant(tmp_path: Path) -> None:
    from noisevision.models import create_encoder, save_encoder

    path = save_encoder(tmp_path / "run" / "encoder.pt", create_encoder("resnet18", width=0.25))
    gen = nv.create_generator("feature-vis/checkpoint", checkpoint=str(tmp_path / "run"), steps=2, chunk=2)
    images = gen.render([0, 1], 0, 16)
    assert images.shape == (2, 16, 16, 3)
    same = nv.create_generator("feature-vis/checkpoint", checkpoint=str(path), arch="resnet18", steps=2, chunk=2)
    np.testing.assert_array_equal(same.render([1], 0, 16)[0], images[1])


def test_bad_input_raises_user_error(tmp_path: Path) -> None:
    from noisevision.models import create_encoder, save_encoder

    good = save_encoder(tmp_path / "encoder.pt", create_encoder("resnet18", width=0.25))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    cases = [
        dict(checkpoint=str(tmp_path / "missing.pt")),
        dict(checkpoint=str(tmp_path / "garbage.pt")),
        dict(checkpoint=str(tmp_path / "other.pt")),
        dict(checkpoint=str(good), arch="resnet50"),
    ]
    for overrides in cases:
        with pytest.raises(nv.UserError):
            nv.create_generator("feature-vis/checkpoint", **overrides)
    with pytest.raises(nv.UserError, match="-p checkpoint="):
        nv.create_generator("feature-vis/checkpoint", steps=1).render([0], 0, 16)
    with pytest.raises(nv.UserError, match="no checkpoint"):
        nv.create_generator("feature-vis/random", checkpoint=str(good))
    for overrides in (dict(steps=0), dict(lr=-1), dict(chunk=0), dict(arch="resnet7")):
        with pytest.raises(nv.UserError):
            nv.create_generator("feature-vis/random", **overrides).render([0], 0, 16)
    with pytest.raises(nv.UserError, match="layer"):
        nv.create_generator("feature-vis/random", layer="fc9", **TINY).render([0], 0, 16)
