"""The IMPALA CNN and the PolicyCore runtime."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.rl.policy import (
    ImpalaCNN,
    PolicyCore,
    categorical_entropy,
    resolve_device,
)


def test_impala_architecture_and_parameter_count():
    # 3 stacks x (1 conv + 2 residual blocks x 2 convs) = 15 convs; 64 -> 32 -> 16 -> 8 spatially.
    net = ImpalaCNN(width=1.0)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 15
    assert [c.out_channels for c in convs[::5]] == [16, 32, 32]
    assert net.dense.in_features == 32 * 8 * 8 and net.dense.out_features == 256
    # Counted by hand: stack(c_in, c) = 27 c_in c + c + 4 (9 c^2 + c); dense 2048*256+256; heads 257*15 + 257.
    stack = lambda ci, c: 9 * ci * c + c + 4 * (9 * c * c + c)  # noqa: E731
    expected = stack(3, 16) + stack(16, 32) + stack(32, 32) + 2048 * 256 + 256 + 256 * 15 + 15 + 256 + 1
    assert sum(p.numel() for p in net.parameters()) == expected == 626_256
    assert ImpalaCNN(width=2.0).stacks[0].conv.out_channels == 32


def test_heads_are_orthogonal_with_reference_gains():
    net = ImpalaCNN()
    w = net.policy_head.weight.detach()
    # Orthogonal rows scaled by the gain: W W^T = gain^2 I (15 rows of a 256-wide matrix).
    np.testing.assert_allclose((w @ w.T).numpy(), 0.01**2 * np.eye(15), atol=1e-7)
    assert torch.all(net.policy_head.bias == 0)
    assert net.value_head.weight.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_invalid_width():
    with pytest.raises(ValueError, match="width"):
        ImpalaCNN(width=0)


def test_channels_last_and_nchw_give_the_same_outputs():
    torch.manual_seed(0)
    net = ImpalaCNN()
    obs = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8)
    a = PolicyCore(net, "cpu", bf16=False, channels_last=False)
    ref_logits, ref_value = a.forward(obs)
    # Reference without PolicyCore: explicit float conversion and NCHW layout.
    plain_logits, plain_value = net(obs.permute(0, 3, 1, 2).contiguous().float() / 255.0)
    torch.testing.assert_close(ref_logits, plain_logits)
    b = PolicyCore(net, "cpu", bf16=False, channels_last=True)
    logits, value = b.forward(obs)
    assert b.preprocess(obs).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(value, ref_value, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_is_close_to_fp32_and_returns_fp32():
    torch.manual_seed(0)
    net = ImpalaCNN()
    obs = torch.randint(0, 256, (16, 64, 64, 3), dtype=torch.uint8)
    ref_logits, _ = PolicyCore(net, "cpu", bf16=False).forward(obs)
    logits, value = PolicyCore(net, "cpu", bf16=True).forward(obs)
    assert logits.dtype == torch.float32 and value.dtype == torch.float32
    torch.testing.assert_close(logits, ref_logits, atol=2e-3, rtol=5e-2)


def test_act_samples_from_the_policy_distribution():
    torch.manual_seed(0)
    core = PolicyCore(ImpalaCNN(), "cpu", bf16=False)
    obs = np.zeros((4000, 64, 64, 3), np.uint8)  # identical frames: one distribution
    out = core.act(obs, torch.Generator().manual_seed(1))
    probs = torch.softmax(out.logits[0], -1)
    freq = torch.bincount(out.action, minlength=15).float() / 4000
    # Near-uniform initial policy; the sample frequencies match the probabilities within sampling error.
    assert (freq - probs).abs().max().item() < 4 * np.sqrt(0.07 * 0.93 / 4000)
    expected_lp = torch.log_softmax(out.logits, -1).gather(1, out.action[:, None]).squeeze(1)
    torch.testing.assert_close(out.log_prob, expected_lp)
    assert out.value.shape == (4000,)


def test_act_is_deterministic_given_a_generator():
    core = PolicyCore(ImpalaCNN(), "cpu")
    obs = np.random.default_rng(0).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    a = core.act(obs, torch.Generator().manual_seed(5)).action
    b = core.act(obs, torch.Generator().manual_seed(5)).action
    assert torch.equal(a, b)


def test_rejects_float_observations():
    core = PolicyCore(ImpalaCNN(), "cpu")
    with pytest.raises(ValueError, match="uint8"):
        core.act(np.zeros((2, 64, 64, 3), np.float32))


def test_entropy_of_uniform():
    assert categorical_entropy(torch.zeros(1, 15)).item() == pytest.approx(np.log(15))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_act_matches_eager():
    torch.manual_seed(0)
    core = PolicyCore(ImpalaCNN(), "cuda", bf16=False, cuda_graph=True)
    obs = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    graph_out = core.act(obs)
    assert core._graph is not None
    eager_logits, eager_value = core.forward(core.to_device(obs))
    torch.testing.assert_close(graph_out.logits, eager_logits)
    torch.testing.assert_close(graph_out.value, eager_value)
    # New weights copied in place are seen by the graph.
    with torch.no_grad():
        for p in core.model.parameters():
            p.add_(0.01)
    again = core.act(obs)
    torch.testing.assert_close(again.value, core.forward(core.to_device(obs))[1])
