import pytest
import torch

from genflow.nn.nets import SeedDecoder, SeedEncoder, build_decoder, build_encoder


def _shapes(module, x):
    shapes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
        for m in module
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    out = module(x)
    for h in hooks:
        h.remove()
    return shapes, out


def test_seed_architecture_tensor_sizes():
    d = 16
    shapes, z = _shapes(SeedEncoder(d), torch.zeros(2, 1, 28, 28))
    assert shapes == [(32, 24, 24), (32, 20, 20), (32, 9, 9), (32, 4, 4), (d, 1, 1)]
    assert z.shape == (2, d)
    shapes, x = _shapes(SeedDecoder(d), z)
    assert shapes == [(32, 4, 4), (32, 9, 9), (32, 20, 20), (32, 24, 24), (1, 28, 28)]
    assert x.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_encoder_decoder_round_trip_shapes(shape, arch):
    enc = build_encoder(arch, shape, 10, hidden_dims=(16,), channels=4)
    dec = build_decoder(arch, 5, shape, num_params=2, hidden_dims=(16,), channels=4)
    assert enc(torch.zeros(2, *shape)).shape == (2, 10)
    assert dec(torch.zeros(2, 5)).shape == (2, 2 * shape[0], *shape[1:])


def test_mlp_on_vectors_and_linear_when_no_hidden_layers():
    dec = build_decoder("mlp", 3, (2,), hidden_dims=())
    assert [type(m).__name__ for m in dec[0]] == ["Linear"]
    assert dec(torch.zeros(4, 3)).shape == (4, 2)


def test_architecture_data_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"1x28x28.*\(3, 32, 32\).*architecture: conv"):
        build_encoder("seed", (3, 32, 32), 8)
    with pytest.raises(ValueError, match="mlp for vector data"):
        build_encoder("conv", (2,), 8)
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_decoder("resnet", 8, (1, 8, 8))
