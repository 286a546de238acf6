"""ImageNet weights: EfficientNet-Lite from the installed packages (mapped onto timm, checked against
the reference implementation), the Hub download for other encoders and its one-line offline error."""

from __future__ import annotations

import socket
import time

import pytest
import timm
import torch

from tests.model.conftest import tiny_config
from vcseg.errors import VcsegError
from vcseg.model import pretrained
from vcseg.model.encoders import build_encoder
from vcseg.model.network import MemoryNetwork
from vcseg.model.pretrained import lite_imagenet_state, lite_package_file, map_in_order

LITE_VARIANTS = (0, 1, 2)
TENSORS = {0: 247, 1: 322, 2: 322}  # leaving out num_batches_tracked


def _without_counters(state):
    return {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}


def test_map_in_order_renames_by_position_and_leaves_out_counters():
    source = {"_conv.weight": torch.zeros(4, 3), "_bn.num_batches_tracked": torch.tensor(7),
              "_bn.weight": torch.ones(4), "_fc.weight": torch.full((2, 4), 2.0)}
    target = {"conv.weight": torch.Size([4, 3]), "bn.weight": torch.Size([4]),
              "bn.num_batches_tracked": torch.Size([]), "head.weight": torch.Size([2, 4])}
    mapped = map_in_order(source, target)
    assert list(mapped) == ["conv.weight", "bn.weight", "head.weight"]
    assert mapped["bn.weight"] is source["_bn.weight"] and mapped["head.weight"] is source["_fc.weight"]


def test_map_in_order_refuses_a_wrong_shape_and_a_wrong_count():
    source = {"_conv.weight": torch.zeros(4, 3), "_bn.weight": torch.ones(5)}
    target = {"conv.weight": torch.Size([4, 3]), "bn.weight": torch.Size([4])}
    with pytest.raises(VcsegError, match=r"'_bn.weight' has shape \(5,\).*'bn.weight' of shape \(4,\)"):
        map_in_order(source, target)
    with pytest.raises(VcsegError, match="2 tensors.*1: they do not map one to one"):
        map_in_order(source, {"conv.weight": torch.Size([4, 3])})


@pytest.mark.parametrize("variant", LITE_VARIANTS)
def test_each_package_maps_onto_timms_tf_efficientnet_lite(variant):
    source = _without_counters(torch.load(lite_package_file(variant), map_location="cpu", weights_only=True))
    timm_state = _without_counters(timm.create_model(f"tf_efficientnet_lite{variant}").state_dict())
    mapped = lite_imagenet_state(variant)
    assert len(source) == len(mapped) == TENSORS[variant]
    assert list(mapped) == list(timm_state)  # timm's names, in timm's order
    assert all(mapped[key].shape == timm_state[key].shape for key in timm_state)
    pairs = dict(zip(source, mapped))  # package name -> timm name
    assert pairs["_conv_stem.weight"] == "conv_stem.weight" and pairs["_bn0.running_var"] == "bn1.running_var"
    assert pairs["_conv_head.weight"] == "conv_head.weight" and pairs["_fc.bias"] == "classifier.bias"
    assert all(torch.equal(source[old], mapped[new]) for old, new in pairs.items())


@pytest.mark.parametrize("variant", LITE_VARIANTS)
def test_mapped_timm_model_equals_the_reference_implementation(variant):
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")  # the `test` extra
    torch.manual_seed(variant)
    x = torch.randn(1, 3, 224, 320)
    # The reference pads for a fixed image size ("same" padding computed once): give it this one.
    reference = reference_module.EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=(224, 320))
    reference.load_state_dict(torch.load(lite_package_file(variant), map_location="cpu", weights_only=True))
    model = timm.create_model(f"tf_efficientnet_lite{variant}")
    model.load_state_dict(lite_imagenet_state(variant), strict=False)  # counters stay timm's
    reference.eval(), model.eval()
    with torch.no_grad():
        expected, actual = reference.extract_features(x), model.forward_features(x)
        assert actual.shape == expected.shape == (1, 1280, 7, 10)
        assert (actual - expected).abs().max().item() <= 1e-5  # measured: 0.0
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("variant", LITE_VARIANTS)
def test_vcseg_lite_encoder_maps_equal_the_reference_blocks(variant):
    """The stride-2..16 maps the networks read are the reference's block outputs at those strides."""
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_module.EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=(96, 128))
    reference.load_state_dict(torch.load(lite_package_file(variant), map_location="cpu", weights_only=True))
    encoder = build_encoder(f"tu-tf_efficientnet_lite{variant}", weights="imagenet")
    reference.eval(), encoder.eval()
    x = torch.randn(2, 3, 96, 128)
    last_at: dict[int, torch.Tensor] = {}  # stride -> the last block output at that stride
    with torch.no_grad():
        h = reference._swish(reference._bn0(reference._conv_stem(x)))
        for block in reference._blocks:
            h = block(h)
            last_at[96 // h.shape[-2]] = h
        maps = encoder(x)
    for stride, ours in zip((2, 4, 8, 16), maps[1:5]):
        assert (ours - last_at[stride]).abs().max().item() <= 1e-5, stride  # measured: 0.0


def test_smps_timm_tf_lite_encoders_are_not_the_packaged_architecture():
    """smp's `timm-tf_efficientnet_lite*` pad symmetrically (batch-norm eps 1e-5): the packaged
    weights would compute something else there, so "imagenet" for them is smp's own download."""
    assert [pretrained.lite_variant(f"tu-tf_efficientnet_lite{n}") for n in LITE_VARIANTS] == [0, 1, 2]
    assert not pretrained.is_packaged("timm-tf_efficientnet_lite0")
    assert not pretrained.is_packaged("tu-efficientnet_lite0")  # timm's symmetric-padding variant
    encoder = build_encoder("timm-tf_efficientnet_lite0")
    assert encoder.bn1.eps == 1e-5 and encoder.conv_stem.padding == (1, 1)


def test_imagenet_lite0_memory_network_has_the_packaged_weights():
    model = MemoryNetwork(tiny_config(encoder="tu-tf_efficientnet_lite0", encoder_weights="imagenet"))
    packaged = lite_imagenet_state(0)
    own = {key.removeprefix("model."): value for key, value in model.encoder.state_dict().items()
           if not key.endswith("num_batches_tracked")}
    assert len(own) > 200 and all(torch.equal(value, packaged[key]) for key, value in own.items())
    # its normalisation is the one those weights were trained with (timm's pretrained config)
    assert model.config.input_mean == (0.5, 0.5, 0.5) and model.config.input_std == (0.5, 0.5, 0.5)
    assert torch.equal(model.mean.flatten(), torch.full((3,), 0.5))
    # value_encoder_weights unset: the value encoder starts random, as before
    assert model.config.value_encoder == "resnet18" and model.config.value_encoder_weights is None


def test_imagenet_value_encoder_sees_the_image_as_imagenet_and_the_masks_silently():
    """Frame + 2 mask channels: the stem's RGB filters are the packaged ones, the mask channels'
    weights start at zero, every later tensor is the packaged one; so with empty masks the value
    encoder computes exactly what the RGB encoder computes on the frame."""
    model = MemoryNetwork(tiny_config(encoder="tu-tf_efficientnet_lite0", encoder_weights="imagenet",
                                      value_encoder="tu-tf_efficientnet_lite0", value_encoder_weights="imagenet"))
    packaged = lite_imagenet_state(0)
    own = {key.removeprefix("model."): value for key, value in model.value_encoder.state_dict().items()
           if not key.endswith("num_batches_tracked")}
    stem = own.pop("conv_stem.weight")
    assert stem.shape == (32, 5, 3, 3)
    assert torch.equal(stem[:, :3], packaged["conv_stem.weight"]) and not stem[:, 3:].any()
    assert len(own) > 200 and all(torch.equal(value, packaged[key]) for key, value in own.items())
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        rgb_maps = model.encoder.eval()(image)
        value_maps = model.value_encoder.eval()(torch.cat([image, torch.zeros(1, 2, 64, 96)], dim=1))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-4) for a, b in zip(rgb_maps[2:], value_maps[2:]))


def test_downloaded_weights_reach_a_wider_encoder_the_same_way(monkeypatch):
    """A 5-channel encoder with downloaded ImageNet weights (here a stand-in for the download):
    the RGB filters as downloaded, zero for the extra channels, as with the packaged weights (smp
    itself would spread the RGB filters over all five channels, scaled by 3/5)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(3)
    rgb = smp.encoders.get_encoder("resnet18", in_channels=3, depth=4, weights=None)
    asked = []

    def fake_download(name, in_channels, depth, setting):
        asked.append((name, in_channels))
        return rgb

    monkeypatch.setattr(pretrained, "downloaded_encoder", fake_download)
    encoder = build_encoder("resnet18", in_channels=5, weights="imagenet", setting="model.value_encoder_weights")
    assert asked == [("resnet18", 3)]
    own, downloaded = encoder.state_dict(), rgb.state_dict()
    assert torch.equal(own["conv1.weight"][:, :3], downloaded["conv1.weight"]) and not own["conv1.weight"][:, 3:].any()
    assert all(torch.equal(value, downloaded[key]) for key, value in own.items() if key != "conv1.weight")


def test_imagenet_value_encoder_must_share_the_query_encoders_normalisation():
    with pytest.raises(VcsegError, match="value_encoder_weights.*normalised"):
        MemoryNetwork(tiny_config(encoder="resnet18", value_encoder="tu-tf_efficientnet_lite0",
                                  value_encoder_weights="imagenet"))


def test_imagenet_weights_need_the_rgb_channels():
    with pytest.raises(VcsegError, match="RGB"):
        build_encoder("tu-tf_efficientnet_lite0", in_channels=1, weights="imagenet")


# ---- other encoders: the Hub --------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Hub in reach, and an empty Hub cache (weights a developer downloaded are not found)."""
    from huggingface_hub import constants

    monkeypatch.setattr(pretrained, "hub_reachable", lambda timeout=pretrained.HUB_TIMEOUT_S: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return constants


@pytest.mark.parametrize("name", ["resnet18", "tu-resnet18"])
def test_offline_imagenet_download_is_one_line_naming_the_local_file(offline, name):
    started = time.perf_counter()
    with pytest.raises(VcsegError) as caught:
        build_encoder(name, weights="imagenet")
    message = str(caught.value)
    assert "\n" not in message and "cannot reach" in message and name in message
    assert 'model.encoder_weights = "path/to/state_dict.pth"' in message
    assert time.perf_counter() - started < 20  # the Hub client's retries take a minute offline
    assert offline.HF_HUB_OFFLINE is False  # offline mode was for this download only


def test_offline_error_names_the_proposal_setting(offline):
    from vcseg.config import ProposalConfig
    from vcseg.model.proposals import ProposalNetwork

    with pytest.raises(VcsegError, match=r'proposals.encoder_weights = "path/to/state_dict.pth"'):
        ProposalNetwork(ProposalConfig(encoder="resnet18", encoder_weights="imagenet", decoder_channels=32))


def test_a_failed_download_while_online_is_one_line_too(monkeypatch):
    import segmentation_models_pytorch.encoders as smp_encoders
    from huggingface_hub.errors import LocalEntryNotFoundError

    def refuse(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub.\nMore.")

    monkeypatch.setattr(pretrained, "hub_reachable", lambda timeout=pretrained.HUB_TIMEOUT_S: True)
    monkeypatch.setattr(smp_encoders, "hf_hub_download", refuse)
    with pytest.raises(VcsegError, match="the download failed") as caught:
        build_encoder("resnet18", weights="imagenet")
    assert "\n" not in str(caught.value)


def test_hub_reachable_gives_up_within_its_timeout(monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.perf_counter()
        assert pretrained.hub_reachable(timeout=0.5) is False
        assert time.perf_counter() - started < 2
    monkeypatch.setattr(constants, "ENDPOINT", "http://no-such-host.invalid")
    assert pretrained.hub_reachable(timeout=0.5) is False


def test_local_state_dict_path_still_loads(tmp_path):
    source = build_encoder("tu-tf_efficientnet_lite0", weights="imagenet")
    path = tmp_path / "lite0.pth"
    torch.save(source.state_dict(), path)
    loaded = build_encoder("tu-tf_efficientnet_lite0", weights=str(path))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
