"""A small policy-and-value convolutional network for Hex (torch), seen from the player to move.

The input is `hex.canonical_planes` (own stones, opponent's stones, empty), in which the player to move always
connects top to bottom, so one network plays both colours. The policy head ends in one fully connected layer,
`policy_out`, from the head's features to one logit per cell: that layer is what Policy Gradient Search adapts
during a search (Anthony et al. 2019, arXiv 1904.03646, adapt the final layer(s) of the simulation policy and keep
the rest fixed, which also lets a search compute the trunk once per position and reuse it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.search.hex import canonical_planes, canonical_to_action


class PolicyValueNet(nn.Module):
    def __init__(self, board_size: int, channels: int = 32, blocks: int = 3):
        super().__init__()
        if channels < 1 or blocks < 1:
            raise ValueError(f"channels and blocks must be at least 1, got {channels}, {blocks}")
        self.board_size, self.channels, self.blocks = board_size, channels, blocks
        cells = board_size * board_size
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
        for _ in range(blocks - 1):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.policy_features = nn.Sequential(nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten())
        self.policy_out = nn.Linear(2 * cells, cells)
        self.value_head = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(cells, 32), nn.ReLU(), nn.Linear(32, 1), nn.Tanh())

    def config(self) -> dict:
        return {"board_size": self.board_size, "channels": self.channels, "blocks": self.blocks}

    def features_and_value(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The input of `policy_out` (B, 2*n*n) and the value (B,) for canonical planes (B, 3, n, n)."""
        h = self.trunk(planes)
        return self.policy_features(h), self.value_head(h).squeeze(-1)

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits over cells in the canonical frame (B, n*n) and values in [-1, 1] (B,)."""
        features, value = self.features_and_value(planes)
        return self.policy_out(features), value


def masked_log_softmax(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.masked_fill(~legal, -1e9), dim=-1)


@torch.no_grad()
def evaluate(net: PolicyValueNet, boards: np.ndarray, to_play: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move probabilities over board actions (B, n*n), zero on occupied cells, and the value for the player to
    move (B,), for positions (boards (B, n*n), to_play (B,))."""
    n = net.board_size
    device = next(net.parameters()).device
    planes = torch.from_numpy(canonical_planes(boards, to_play)).to(device)
    logits, value = net(planes)
    legal = planes[:, 2].flatten(1) > 0
    probs = masked_log_softmax(logits, legal).exp().cpu().numpy()
    # canonical cell -> board action, per row
    index = canonical_to_action(np.arange(n * n)[None, :], to_play[:, None], n)
    out = np.zeros_like(probs)
    np.put_along_axis(out, index, probs, axis=1)
    return out, value.cpu().numpy()


def save_net(net: PolicyValueNet) -> dict:
    return {"config": net.config(), "state_dict": {k: v.cpu() for k, v in net.state_dict().items()}}


def load_net(saved: dict) -> PolicyValueNet:
    net = PolicyValueNet(**saved["config"])
    net.load_state_dict(saved["state_dict"])
    return net.eval()
