import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genflow.losses import (
    cycle_consistency_loss,
    domain_classification_loss,
    identity_loss,
    l1_per_example,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
)
from genflow.nn.conv import conv_output_size, receptive_field
from genflow.nn.image2image import (
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    StarDiscriminator,
    StarGenerator,
    UNetGenerator,
    unet_skip_shapes,
)


def _grads_reach_every_parameter(net: nn.Module, out: torch.Tensor) -> None:
    out.square().sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


# ---- U-Net ------------------------------------------------------------------------------------
def test_unet_skip_shapes_of_the_256_config_are_the_papers():
    # pix2pix appendix 6.1.1: encoder C64-C128-C256-C512-C512-C512-C512-C512, each halving the
    # side; the seven outer ones are concatenated into the decoder, the 1x1 bottleneck is not
    expected = [
        (64, 128, 128),
        (128, 64, 64),
        (256, 32, 32),
        (512, 16, 16),
        (512, 8, 8),
        (512, 4, 4),
        (512, 2, 2),
    ]
    assert unet_skip_shapes(256, 256) == expected
    # the decoder's inputs are the paper's CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128
    net = UNetGenerator(3, 3)
    assert [up[0].in_channels for up in net.up] + [net.out[0].in_channels] == [
        512, 1024, 1024, 1024, 1024, 512, 256, 128,
    ]  # fmt: skip
    assert [len(up) == 4 for up in net.up] == [True] * 3 + [False] * 4  # dropout in CD blocks


def test_unet_skip_shapes_match_the_forward_pass_at_256():
    net = UNetGenerator(3, 2, num_downs=8, base_channels=2).eval()
    seen = []
    for down in net.down:
        down.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    y = net(torch.randn(1, 3, 256, 256))
    assert seen[:-1] == net.skip_shapes(256, 256) == unet_skip_shapes(256, 256, 8, 2)
    assert seen[-1] == (16, 1, 1)  # the bottleneck
    assert y.shape == (1, 2, 256, 256)


def test_unet_shapes_range_gradients_and_dropout_noise():
    x = torch.randn(4, 3, 32, 32)
    net = UNetGenerator(3, 2, num_downs=5, base_channels=4)
    y = net(x)
    assert y.shape == (4, 2, 32, 32) and y.abs().max() <= 1
    _grads_reach_every_parameter(net, y)
    # dropout is pix2pix's noise: two training-mode passes differ; without it they agree
    assert not torch.equal(net(x), net(x))
    quiet = UNetGenerator(3, 2, num_downs=5, base_channels=4, dropout=0.0)
    assert torch.equal(quiet(x), quiet(x))
    assert torch.equal(net.eval()(x), net(x))


def test_unet_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 32"):
        UNetGenerator(3, 3, num_downs=5, base_channels=4)(torch.randn(1, 3, 48, 40))


# ---- ResNet and StarGAN generators ------------------------------------------------------------
def test_resnet_generator_shapes_range_and_gradients():
    net = ResnetGenerator(3, 1, base_channels=4, num_blocks=2)
    y = net(torch.randn(2, 3, 20, 28))
    assert y.shape == (2, 1, 20, 28) and y.abs().max() <= 1
    _grads_reach_every_parameter(net, y)
    blocks = sum(type(m).__name__ == "ResnetBlock" for m in ResnetGenerator(3, 3).modules())
    assert blocks == 9
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 18, 20))


def test_star_generator_takes_index_or_vector_labels():
    net = StarGenerator(3, num_domains=5, base_channels=4, num_blocks=2)
    x = torch.randn(3, 3, 16, 16)
    c = torch.tensor([0, 4, 2])
    y = net(x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert net.net[0].in_channels == 3 + 5  # label maps concatenated to the input
    torch.testing.assert_close(y, net(x, F.one_hot(c, 5).float()))
    assert not torch.allclose(y, net(x, torch.tensor([1, 1, 1])))  # the label steers G
    _grads_reach_every_parameter(net, y)
    with pytest.raises(ValueError, match=r"indices in \[0, 5\)"):
        net(x, torch.tensor([0, 5, 1]))


# ---- discriminators ---------------------------------------------------------------------------
@pytest.mark.parametrize("num_layers, field", [(1, 16), (2, 34), (3, 70), (5, 286)])
def test_patchgan_receptive_field_is_the_papers(num_layers, field):
    # pix2pix sec. 4.4: 16x16, 34x34, 70x70 and 286x286 PatchGANs
    net = PatchDiscriminator(3, base_channels=4, num_layers=num_layers)
    assert net.receptive_field() == field
    convs = net.convs()
    assert receptive_field([4] * len(convs), [c.stride[0] for c in convs]) == field


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_patchgan_receptive_field_is_what_the_gradient_reaches(num_layers):
    # the input pixels that change one central logit span exactly the receptive field
    net = PatchDiscriminator(1, base_channels=4, num_layers=num_layers).double().eval()
    x = torch.randn(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(0).nonzero().flatten()
    field = net.receptive_field()
    assert 0 < rows[0] and rows[-1] < 127  # the field lies inside the image, not clipped
    assert len(rows) == len(cols) == rows[-1] - rows[0] + 1 == field


def test_patchgan_output_grid_and_gradients():
    net = PatchDiscriminator(6, base_channels=4, norm="instance")
    y = net(torch.randn(2, 6, 64, 48))
    size = 64
    for stride in (2, 2, 2, 1, 1):
        size = conv_output_size(size, kernel=4, stride=stride, padding=1)
    assert y.shape == (2, 1, size, net.output_size(48)) == (2, 1, 6, 4)
    assert net.output_size(256) == 30  # the 70x70 PatchGAN's 30x30 grid on 256x256 images
    _grads_reach_every_parameter(net, y)
    norms = [type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__]
    assert norms == ["InstanceNorm2d"] * 3  # none on the first layer


def test_star_discriminator_heads():
    net = StarDiscriminator(64, 3, num_domains=5, base_channels=4, num_layers=5)
    src, cls = net(torch.randn(2, 3, 64, 64))
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 5)
    assert net.cls.kernel_size == (2, 2)  # h / 2^n: covers the whole final map
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in net.modules())
    # paper's 128x128 config: 6 layers to 2048 channels, a 2x2 grid of scores
    paper = StarDiscriminator(128, 3, num_domains=5)
    assert paper.features[-2].out_channels == 2048 and paper.cls.kernel_size == (2, 2)
    with pytest.raises(ValueError, match="built for 64x64"):
        net(torch.randn(1, 3, 32, 32))


# ---- image pool -------------------------------------------------------------------------------
def _batches(count, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 1, 4, 4, generator=g) for _ in range(count)]


def test_pool_returns_new_images_until_full():
    pool = ImagePool(size=6)
    for batch in _batches(3):
        assert torch.equal(pool.query(batch), batch)
    assert len(pool) == 6


def test_full_pool_swaps_a_stored_image_half_the_time():
    pool, g = ImagePool(size=4), torch.Generator().manual_seed(0)
    batches = _batches(402)
    pool.query(torch.cat(batches[:2]))
    swapped = 0
    for batch in batches[2:]:
        # what may come back: the new images, or ones the pool held (an image of this batch
        # can be stored by one draw and swapped out by the next)
        allowed = [*pool.images.clone(), *batch]
        out = pool.query(batch, generator=g)
        for image, new in zip(out, batch, strict=True):
            assert any(torch.equal(image, a) for a in allowed)
            swapped += not torch.equal(image, new)
    n = 2 * 400
    assert abs(swapped - n / 2) < 4 * math.sqrt(n / 4)  # Binomial(800, 1/2), 4 sigma
    assert len(pool) == 4


def test_pool_is_deterministic_under_a_seed_and_resumes_from_its_state():
    batches = _batches(20)

    def run(pool, g, part):
        return [pool.query(b, generator=g) for b in part]

    a, ga = ImagePool(size=5), torch.Generator().manual_seed(3)
    b, gb = ImagePool(size=5), torch.Generator().manual_seed(3)
    out_a, out_b = run(a, ga, batches), run(b, gb, batches)
    assert all(torch.equal(x, y) for x, y in zip(out_a, out_b, strict=True))
    # stop halfway, save the pool (and the generator), continue in a fresh pool
    c, gc = ImagePool(size=5), torch.Generator().manual_seed(3)
    first = run(c, gc, batches[:10])
    state, rng = c.state_dict(), gc.get_state()
    d, gd = ImagePool(size=5), torch.Generator()
    d.load_state_dict(state)
    gd.set_state(rng)
    rest = run(d, gd, batches[10:])
    assert all(torch.equal(x, y) for x, y in zip(first + rest, out_a, strict=True))
    assert ImagePool(5).state_dict()["images"].numel() == 0
    with pytest.raises(ValueError, match="more than this pool's size"):
        ImagePool(2).load_state_dict(state)


def test_pool_output_is_detached_and_size_zero_passes_through():
    fake = torch.randn(3, 1, 4, 4, requires_grad=True)
    assert not ImagePool(2).query(fake * 2).requires_grad
    assert torch.equal(ImagePool(0).query(fake), fake.detach())


# ---- losses -----------------------------------------------------------------------------------
def test_least_squares_losses_on_patch_grids():
    real, fake = torch.ones(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)
    assert torch.equal(least_squares_discriminator_loss(real, fake), torch.zeros(3))
    assert torch.equal(least_squares_generator_loss(real), torch.zeros(3))
    # by hand: D(y) = 0, D(G(x)) = 1 everywhere -> 1/2 + 1/2; G's (0 - 1)^2 = 1
    assert torch.equal(least_squares_discriminator_loss(fake, real), torch.ones(3))
    assert torch.equal(least_squares_generator_loss(fake), torch.ones(3))
    scores = torch.randn(5, 1, 3, 3)
    torch.testing.assert_close(
        least_squares_generator_loss(scores), ((scores - 1) ** 2).mean((1, 2, 3))
    )
    torch.testing.assert_close(  # (B,) scores work too
        least_squares_generator_loss(scores.flatten(1)[:, 0]), (scores[:, 0, 0, 0] - 1) ** 2
    )


def test_cycle_and_identity_losses_vanish_for_identity_generators():
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    g = f = nn.Identity()
    assert torch.equal(cycle_consistency_loss(x, f(g(x))), torch.zeros(4))
    assert torch.equal(identity_loss(x, g(x)), torch.zeros(4))
    shifted = x + 0.25
    torch.testing.assert_close(cycle_consistency_loss(x, shifted), torch.full((4,), 0.25))
    torch.testing.assert_close(identity_loss(x, -x), 2 * x.abs().mean((1, 2, 3)))
    torch.testing.assert_close(
        l1_per_example(x, shifted), F.l1_loss(x, shifted, reduction="none").mean((1, 2, 3))
    )
    with pytest.raises(ValueError, match="equal shapes"):
        l1_per_example(x, x[:, :1])


def test_domain_classification_loss_single_and_multi_label():
    logits = torch.randn(4, 5)
    labels = torch.tensor([0, 3, 1, 4])
    torch.testing.assert_close(
        domain_classification_loss(logits, labels),
        -logits.log_softmax(1).gather(1, labels[:, None]).squeeze(1),
    )
    attributes = torch.bernoulli(torch.full((4, 5), 0.5))
    expected = -(attributes * F.logsigmoid(logits) + (1 - attributes) * F.logsigmoid(-logits)).sum(
        1
    )
    torch.testing.assert_close(domain_classification_loss(logits, attributes), expected)
    with pytest.raises(ValueError, match="shaped like the logits"):
        domain_classification_loss(logits, attributes[:, :3])
    with pytest.raises(ValueError, match=r"labels \(B,\)"):
        domain_classification_loss(logits, labels[:, None])


def test_stargan_classifies_reals_by_true_and_fakes_by_target_domain():
    # Choi et al. 2018, eqs. 2-3: D learns -log D_cls(c' | x) on reals with their true label
    # c'; G learns -log D_cls(c | G(x, c)) with the target label c. A D_cls that recognizes
    # domains has a small loss exactly when each term uses its own label.
    true, target = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1])
    real_logits, fake_logits = 10 * F.one_hot(true, 3).float(), 10 * F.one_hot(target, 3).float()
    d_loss = domain_classification_loss(real_logits, true)
    g_loss = domain_classification_loss(fake_logits, target)
    assert (d_loss < 1e-3).all() and (g_loss < 1e-3).all()
    assert (domain_classification_loss(fake_logits, true) > 9).all()
    # through the networks: G's loss reaches G's weights through D_cls of the fake
    g = StarGenerator(3, num_domains=3, base_channels=4, num_blocks=1)
    d = StarDiscriminator(16, 3, num_domains=3, base_channels=4, num_layers=2)
    _, cls = d(g(torch.randn(3, 3, 16, 16), target))
    domain_classification_loss(cls, target).mean().backward()
    assert all(p.grad is not None for p in g.parameters())
