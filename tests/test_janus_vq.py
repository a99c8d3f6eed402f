"""The engine's VQ decoding (``harness/models/janus_vq.py``): the same images as the model's own decoder
(to float rounding), the sub-pixel form of upsampling + convolution, chunk sizes, the heap switch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.models import janus_vq

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _vqmodel(multipliers, grid: int, seed: int = 0):
    """A random JanusVQVAE whose norms and biases matter (the default init leaves them 1 and 0)."""
    from transformers import JanusVQVAEConfig
    from transformers.models.janus.modeling_janus import JanusVQVAE

    config = JanusVQVAEConfig(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32,
                              channel_multiplier=multipliers, num_res_blocks=1, num_patches=grid,
                              projection_dim=32, image_token_embed_dim=32)
    torch.manual_seed(seed)
    model = JanusVQVAE(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator))
            elif name.endswith("bias"):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.mark.parametrize("multipliers", [[1, 1, 1], [1, 2, 2]])  # the second changes channels: 1x1 shortcuts
def test_decoder_gives_the_model_decoders_pixels(multipliers):
    vqmodel = _vqmodel(multipliers, grid=4)
    tokens = torch.randint(0, 64, (5, 16), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        theirs = vqmodel.decode(tokens).permute(0, 2, 3, 1)
        decoder = janus_vq.VQDecoder(vqmodel)
        assert decoder.layered and len(decoder.upsample) == len(multipliers) - 1
        ours = decoder(tokens)
        decoder.layered = False  # the fallback: the decoder modules as they are
        plain = decoder(tokens)
    assert ours.shape == theirs.shape == (5, 16, 16, 3)
    assert theirs.abs().max() > 0.5  # not a degenerate output
    # float rounding only: on the first model the model's own decoder on channels-last tensors alone moves
    # outputs by up to 8e-5 (group norms of one channel over 4x4 pixels amplify rounding)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-4)
    torch.testing.assert_close(plain, theirs, rtol=0, atol=2e-4)
    ours_u8 = np.stack([np.asarray(image) for image in janus_vq.to_images(ours)])
    theirs_u8 = np.stack([np.asarray(image) for image in janus_vq.to_images(theirs)])
    # a truncation step at most, and rarely (the previous channels-last decoding: 4 of 3840 values here)
    assert np.abs(ours_u8.astype(int) - theirs_u8).max() <= 1
    assert (ours_u8 != theirs_u8).mean() < 0.01


def test_upsample_conv_in_subpixel_form_equals_upsampling_then_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 6, 3, padding=1)
    x = torch.randn(2, 8, 5, 7)
    with torch.inference_mode():
        expected = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        got = janus_vq._upsample_conv(x.contiguous(memory_format=torch.channels_last), *janus_vq._subpixel(conv))
    assert got.shape == expected.shape == (2, 6, 10, 14)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_chunk_sizes_are_fixed_per_model_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert janus_vq.chunk_size(cpu, 64, 32) == 8  # the tiny model
    assert janus_vq.chunk_size(cpu, 128, 128) == 1  # the real VQ decoder at 128 px
    assert janus_vq.chunk_size(cpu, 384, 128) == 1
    assert janus_vq.chunk_size(cpu, 16, 32) == janus_vq.MAX_CHUNK_CPU
    assert janus_vq.chunk_size(cuda, 384, 128) == janus_vq.DECODE_CHUNK_CUDA


def test_decode_pads_the_last_chunk_and_keeps_images_independent_of_it():
    vqmodel = _vqmodel([1, 1, 1], grid=4)
    decoder = janus_vq.VQDecoder(vqmodel)
    tokens = torch.randint(0, 64, (5, 16), generator=torch.Generator().manual_seed(2))
    alone = [janus_vq.decode(decoder, tokens[i:i + 1], 4, torch.device("cpu"))[0].tobytes() for i in range(5)]
    together = [image.tobytes() for image in janus_vq.decode(decoder, tokens, 4, torch.device("cpu"))]
    assert alone == together and len(set(alone)) == 5


def test_freed_heap_switch(monkeypatch):
    monkeypatch.setattr(janus_vq, "_heap_kept", None)
    monkeypatch.setattr(janus_vq, "KEEP_FREED_HEAP", False)
    assert janus_vq.keep_freed_heap() is False and janus_vq._heap_kept is None  # left alone
    monkeypatch.setattr(janus_vq, "KEEP_FREED_HEAP", True)
    kept = janus_vq.keep_freed_heap()
    import platform
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert kept is True
    assert janus_vq.keep_freed_heap() is kept  # once per process
