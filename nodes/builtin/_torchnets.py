"""The small PyTorch networks of ``train_torch``: imported only when a training or ``predict``
node runs (torch takes seconds to import; the CLI and the API never load it otherwise).

Each network maps a batch of windows ``(batch, window, features)`` to 3 logits, the classes
−1, 0, 1 in that order.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["build"]


class MLP(nn.Module):
    """The window flattened, ``layers`` hidden layers of ``hidden`` units with ReLU."""

    def __init__(self, n_features: int, window: int, hidden: int, layers: int) -> None:
        super().__init__()
        dims = [n_features * window] + [hidden] * layers
        parts: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            parts += [nn.Linear(a, b), nn.ReLU()]
        parts.append(nn.Linear(dims[-1], 3))
        self.net = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # type: ignore[no-any-return]


class LSTM(nn.Module):
    """An LSTM of ``layers`` layers over the window; the last step's hidden state → logits."""

    def __init__(self, n_features: int, window: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])  # type: ignore[no-any-return]


class _CausalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dilation: int, kernel: int) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, dilation=dilation)
        self.skip = nn.Conv1d(c_in, c_out, kernel_size=1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(nn.functional.pad(x, (self.pad, 0)))  # left padding only: causal
        return torch.relu(y) + self.skip(x)  # type: ignore[no-any-return]


class TCN(nn.Module):
    """A temporal convolutional network: ``layers`` causal convolutions (kernel 3, dilations
    1, 2, 4, …) with residual connections; the window's last step → logits."""

    def __init__(self, n_features: int, window: int, hidden: int, layers: int) -> None:
        super().__init__()
        blocks = [
            _CausalBlock(n_features if i == 0 else hidden, hidden, 2**i, 3) for i in range(layers)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(x.transpose(1, 2))  # (batch, channels, time)
        return self.head(y[:, :, -1])  # type: ignore[no-any-return]


_ARCHS: dict[str, type[nn.Module]] = {"mlp": MLP, "lstm": LSTM, "tcn": TCN}


def build(arch: str, n_features: int, window: int, hidden: int, layers: int) -> nn.Module:
    """A fresh network (its initial weights drawn from torch's current random state)."""
    return _ARCHS[arch](n_features, window, hidden, layers)
