import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genflow.callbacks import Interpolation
from genflow.callbacks.grids import to_grid
from genflow.latent import (
    apply_attribute,
    attribute_vector,
    decode_path,
    encode_all,
    interpolate,
    interpolation_grid,
    lerp,
    random_codes,
    slerp,
)
from genflow.models import VAE, GenerativeModel

T = torch.linspace(0, 1, 11, dtype=torch.float64)


def _angle(a, b):
    return torch.atan2(torch.linalg.cross(a, b).norm(), a @ b)  # 3-D vectors


# ---- slerp and lerp -----------------------------------------------------------------------
def test_slerp_on_orthogonal_unit_vectors_is_the_closed_form():
    e0, e1 = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(slerp(e0, e1, 0.5), (e0 + e1) / math.sqrt(2))
    # the quarter circle at constant angular speed: cos(t pi/2) e0 + sin(t pi/2) e1
    expected = torch.stack([torch.cos(T * math.pi / 2), torch.sin(T * math.pi / 2)], dim=1)
    assert torch.allclose(slerp(e0, e1, T), expected)


@pytest.mark.parametrize("shape", [(16,), (2, 3, 3)])
def test_slerp_matches_shoemakes_formula_and_keeps_the_norm_of_equal_norm_endpoints(shape):
    z0, z1 = torch.randn(2, *shape, dtype=torch.float64)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms
    omega = torch.acos((z0 * z1).sum() / z0.norm() ** 2)
    t = T.view(-1, *[1] * len(shape))
    shoemake = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    path = slerp(z0, z1, T)
    assert path.shape == (len(T), *shape)
    assert torch.allclose(path, shoemake)
    assert torch.allclose(path.flatten(1).norm(dim=1), z0.norm().expand(len(T)))


def test_slerp_with_unequal_norms_turns_at_constant_speed_and_scales_linearly():
    z0, z1 = torch.tensor([2.0, 0, 0], dtype=torch.float64), torch.tensor([0, 3.0, 4.0]).double()
    path = slerp(z0, z1, T)
    assert torch.allclose(path.norm(dim=1), 2 + 3 * T)  # |z0| = 2 -> |z1| = 5
    angles = torch.stack([_angle(z0, p) for p in path])
    assert torch.allclose(angles, T * math.pi / 2)


@pytest.mark.parametrize("method", ["slerp", "lerp"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_endpoints_are_returned_exactly(method, dtype):
    z0, z1 = (3 * torch.randn(2, 4, 5)).to(dtype)
    path = interpolate(z0, z1, 7, method)
    assert path.dtype == dtype and path.shape == (7, 4, 5)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    f = slerp if method == "slerp" else lerp
    assert torch.equal(f(z0, z1, 0.0), z0) and torch.equal(f(z0, z1, 1.0), z1)


def test_lerp_midpoint_and_steps():
    z0, z1 = torch.tensor([0.0, 2.0, -4.0]), torch.tensor([2.0, 2.0, 4.0])
    assert torch.equal(lerp(z0, z1, 0.5), torch.tensor([1.0, 2.0, 0.0]))
    assert torch.equal(lerp(z0, z1, torch.tensor([0.25, 0.75]))[:, 0], torch.tensor([0.5, 1.5]))


def test_slerp_is_safe_for_parallel_zero_and_opposite_codes():
    z = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    # parallel (and a zero code): the limit of slerp, the straight line
    assert torch.allclose(slerp(z, 3 * z, T), lerp(z, 3 * z, T))
    near = z + torch.tensor([0, 0, 1e-9], dtype=torch.float64)
    assert torch.allclose(slerp(z, near, T), lerp(z, near, T))
    zero = torch.zeros(3, dtype=torch.float64)
    assert torch.allclose(slerp(zero, z, T), lerp(zero, z, T))
    # opposite: a half circle through a direction orthogonal to z, at constant speed
    path = slerp(z, -z, T)
    assert torch.isfinite(path).all()
    assert torch.allclose(path.norm(dim=1), z.norm().expand(len(T)))
    assert torch.allclose(path[5] @ z, torch.zeros((), dtype=torch.float64), atol=1e-12)
    angles = torch.stack([_angle(z, p) for p in path])
    assert torch.allclose(angles, T * math.pi)
    # nearly opposite: it turns through the side where z1 leans
    e0, e1 = torch.eye(2, dtype=torch.float64)
    mid = slerp(e0, -e0 + 1e-6 * e1, 0.5)
    assert torch.allclose(mid, e1, atol=1e-5)


def test_slerp_of_a_batch_equals_slerp_of_each_pair():
    z0, z1 = torch.randn(2, 3, 4, 2, dtype=torch.float64)  # 3 pairs of (4, 2) codes
    batched = slerp(z0, z1, T, batch_dims=1)
    assert batched.shape == (len(T), 3, 4, 2)
    for i in range(3):
        assert torch.allclose(batched[:, i], slerp(z0[i], z1[i], T))


def test_bad_interpolation_arguments_are_clear_errors():
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="same shape"):
        slerp(z, torch.zeros(4), 0.5)
    with pytest.raises(TypeError, match="floating point"):
        lerp(z.long(), z.long(), 0.5)
    with pytest.raises(ValueError, match="1-D tensor of steps"):
        slerp(z, z, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="batch_dims"):
        slerp(z, z, 0.5, batch_dims=1)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        interpolate(z, z, 1)
    with pytest.raises(ValueError, match="choose slerp or lerp"):
        interpolate(z, z, 3, "cubic")


# ---- grids --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_grid_corners_land_exactly_on_the_grid_corners(method):
    corners = torch.randn(4, 2, 3)
    grid = interpolation_grid(corners, rows=4, cols=5, method=method)
    assert grid.shape == (4, 5, 2, 3)
    for (i, j), c in zip([(0, 0), (0, -1), (-1, 0), (-1, -1)], corners, strict=True):
        assert torch.equal(grid[i, j], c)


def test_lerp_grid_is_bilinear_at_a_hand_computed_point():
    corners = torch.tensor([[0.0, 1.0], [4.0, 1.0], [8.0, 1.0], [20.0, 5.0]], dtype=torch.float64)
    grid = interpolation_grid(corners, rows=3, cols=5, method="lerp")
    # row 1, column 1: v = 1/2, u = 1/4; weights 3/8, 1/8, 3/8, 1/8
    # first entries 3/8 * 0 + 1/8 * 4 + 3/8 * 8 + 1/8 * 20 = 6; second 7/8 * 1 + 1/8 * 5 = 1.5
    assert torch.allclose(grid[1, 1], torch.tensor([6.0, 1.5], dtype=torch.float64))
    assert torch.allclose(grid[0, 2], (corners[0] + corners[1]) / 2)


def test_slerp_grid_on_orthonormal_corners():
    corners = torch.eye(4, dtype=torch.float64)
    grid = interpolation_grid(corners, rows=3, cols=3, method="slerp")
    # top middle (e0 + e1)/sqrt 2 and bottom middle (e2 + e3)/sqrt 2 are orthogonal unit
    # vectors, so the centre is their closed-form midpoint (e0 + e1 + e2 + e3) / 2
    assert torch.allclose(grid[1, 1], torch.full((4,), 0.5, dtype=torch.float64))
    assert torch.allclose(grid.norm(dim=-1), torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(4, \*latent_shape\)"):
        interpolation_grid(corners[:3], 3, 3)
    with pytest.raises(ValueError, match="rows >= 2"):
        interpolation_grid(corners, 1, 3)


# ---- attribute vectors --------------------------------------------------------------------
def test_attribute_vector_of_a_hand_made_set():
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0], [0.0, 0.0]])
    mask = torch.tensor([True, True, False, False, False])
    v = attribute_vector(z, mask)  # mean [2, 0] minus mean [0, 2]
    assert torch.allclose(v, torch.tensor([2.0, -2.0]))
    out = apply_attribute(z[2], v, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(out, torch.tensor([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]]))
    assert apply_attribute(z, v, torch.tensor([1.0, 2.0])).shape == (2, 5, 2)
    assert torch.allclose(apply_attribute(z, v, -1.0), z - v)


def test_attribute_vector_errors():
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match="0 of 3 examples have it"):
        attribute_vector(z, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="3 of 3 examples have it"):
        attribute_vector(z, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool tensor"):
        attribute_vector(z, torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match=r"mask must be \(N,\)"):
        attribute_vector(z, torch.tensor([True, False]))


# ---- helpers on a model -------------------------------------------------------------------
def _vae():
    return VAE(
        data_shape=(1, 8, 8), num_bits=1, latent_dim=3, architecture="mlp", hidden_dims=(8,)
    )


def test_encode_all_and_decode_path_in_eval_mode_restore_the_mode():
    model = _vae()
    x = torch.bernoulli(torch.rand(10, 1, 8, 8))
    y = torch.arange(10)
    z = encode_all(model, x, batch_size=4)
    assert model.training and z.shape == (10, 3) and not z.requires_grad
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
    z_loader, labels = encode_all(model.eval(), loader, return_labels=True)
    assert not model.training
    assert torch.allclose(z_loader, z[labels])  # codes and labels in the loader's order
    grid = interpolation_grid(z[:4], rows=3, cols=5)
    images = decode_path(model.train(), grid)
    assert model.training and images.shape == (3, 5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(images[0, 0], model.eval().decode(z[:1])[0])
    codes = random_codes(model, 6, temperature=0.5)
    assert codes.shape == (6, *model.latent_shape)
    g0, g1 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_codes(model, 2, generator=g0), random_codes(model, 2, generator=g1))
    with pytest.raises(ValueError, match=r"latent_shape \(3,\)"):
        decode_path(model, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="pairs"):
        encode_all(model, x.split(4), return_labels=True)


# ---- the callback -------------------------------------------------------------------------
class _ImageLogger(Logger):
    """A logger with an image API, like W&B's, that keeps what it is sent."""

    def __init__(self):
        super().__init__()
        self.images = []

    name = "images"
    version = 0

    def log_hyperparams(self, *args, **kwargs):
        pass

    def log_metrics(self, *args, **kwargs):
        pass

    def log_image(self, key, images, step=None):
        self.images.append((key, images[0], step))


def _fit(tmp_path, callbacks, epochs=2, logger=False, model=None):
    torch.manual_seed(0)
    model = model or _vae()
    x = torch.bernoulli(torch.rand(24, 1, 8, 8))
    data = TensorDataset(x, torch.zeros(24, dtype=torch.long))
    train = DataLoader(data, batch_size=8, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=epochs,
        default_root_dir=tmp_path,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, train, DataLoader(data, batch_size=8))
    return model, trainer, x


def test_interpolation_callback_writes_strips_and_leaves_training_unchanged(tmp_path):
    logger = _ImageLogger()
    callback = Interpolation(num_pairs=3, steps=5, method="slerp", source="prior", seed=1)
    model, trainer, _ = _fit(tmp_path / "with", [callback], logger=logger)
    reference, _, _ = _fit(tmp_path / "without", [])
    state_after_fit = torch.get_rng_state()
    # the strips drew their own noise: training consumed the same random stream and ended with
    # the same weights as without the callback
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    pngs = sorted(p.name for p in (tmp_path / "with" / "samples").iterdir())
    assert pngs == ["interpolation-epoch000.png", "interpolation-epoch001.png"]
    png = np.asarray(Image.open(tmp_path / "with" / "samples" / pngs[-1]))
    assert png.shape == (3 * 9 + 1, 5 * 9 + 1, 3)  # 3 rows of 5 8x8 images, 1-pixel borders
    # the last strip is the trained model's decoded slerp paths, seeded: redrawing it gives the
    # same picture, and so does the image sent to the logger
    strip = callback.make_strip(model)
    assert torch.equal(state_after_fit, torch.get_rng_state())
    assert strip.shape == (3, 5, 1, 8, 8)
    expected = to_grid(strip.flatten(0, 1), nrow=5).mul(255).add(0.5).clamp(0, 255).byte()
    assert np.array_equal(png, expected.permute(1, 2, 0).numpy())
    assert [key for key, _, _ in logger.images] == ["samples/interpolation"] * 2
    assert torch.equal(logger.images[-1][1], to_grid(strip.flatten(0, 1), nrow=5))
    # each row decodes a slerp path between two prior codes drawn with the seed
    torch.manual_seed(1)
    z = torch.randn(6, 3)
    path = slerp(z[:3], z[3:], torch.linspace(0, 1, 5), batch_dims=1).transpose(0, 1)
    assert torch.allclose(strip, decode_path(model, path))


def test_interpolation_between_encoded_validation_images(tmp_path):
    callback = Interpolation(num_pairs=2, steps=4, method="lerp", source="data")
    model, _, x = _fit(tmp_path, [callback], epochs=1)
    strip = callback.make_strip(model)
    with torch.no_grad():
        model.eval()
        ends = model.decode(model.encode(x[:4]))  # the first validation batch, not shuffled
        middle = model.decode(torch.lerp(model.encode(x[:2]), model.encode(x[2:4]), 1 / 3))
    assert torch.allclose(strip[:, 0], ends[:2]) and torch.allclose(strip[:, -1], ends[2:4])
    assert torch.allclose(strip[:, 1], middle, atol=1e-6)
    assert (tmp_path / "samples" / "interpolation-epoch000.png").exists()


class _NoLatent(GenerativeModel):
    def __init__(self):
        super().__init__(data_shape=(1, 8, 8))
        self.w = nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum()

    def validation_step(self, batch, batch_idx):
        pass


class _DecoderOnly(_NoLatent):  # a generator without an encoder, like a GAN
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 64), nn.Sigmoid())

    @property
    def latent_shape(self):
        return (2,)

    def decode(self, z):
        return self.generator(z).view(-1, 1, 8, 8)


def test_models_without_a_latent_space_are_skipped_with_one_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(tmp_path, [Interpolation(steps=3)], epochs=3, model=_NoLatent())
    messages = [str(w.message) for w in caught if "interpolation strips" in str(w.message)]
    assert messages == ["_NoLatent has no latent space; no interpolation strips."]
    assert not (tmp_path / "samples").exists()


def test_data_source_without_an_encoder_falls_back_to_the_prior_once(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback = Interpolation(num_pairs=2, steps=3, source="data")
        model, _, _ = _fit(tmp_path, [callback], epochs=2, model=_DecoderOnly())
    fallbacks = [w for w in caught if "interpolating prior codes" in str(w.message)]
    assert len(fallbacks) == 1 and "_DecoderOnly has no encoder" in str(fallbacks[0].message)
    assert len(list((tmp_path / "samples").glob("interpolation-epoch*.png"))) == 2
    torch.manual_seed(0)
    z = torch.randn(4, 2)
    assert torch.allclose(callback.make_strip(model)[:, 0], decode_path(model, z[:2]))


def test_bad_callback_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="num_pairs"):
        Interpolation(num_pairs=0)
    with pytest.raises(ValueError, match="steps"):
        Interpolation(steps=1)
    with pytest.raises(ValueError, match="slerp or lerp"):
        Interpolation(method="cubic")
    with pytest.raises(ValueError, match="prior or data"):
        Interpolation(source="noise")


def test_auto_source_encodes_validation_images_when_the_model_has_an_encoder(tmp_path):
    auto = Interpolation(num_pairs=2, steps=3, method="lerp")  # source="auto"
    model, _, x = _fit(tmp_path, [auto], epochs=1)
    with torch.no_grad():
        model.eval()
        ends = model.decode(model.encode(x[:4]))
    strip = auto.make_strip(model)
    assert torch.allclose(strip[:, 0], ends[:2]) and torch.allclose(strip[:, -1], ends[2:4])
