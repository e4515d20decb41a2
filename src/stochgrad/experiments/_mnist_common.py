"""Pieces shared by the VAE experiments: stable seeds, generators, the MNIST splits."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from ..data import load_binarized_mnist, mnist_source
from ..data.mnist import SUBSET_SEED, subset_rows

SUBSET = "subset"
"""``data_path`` value that always selects the packaged subset."""


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts, stable across runs and processes."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def limit_rows(x: Tensor, n: int) -> Tensor:
    """``n`` rows of ``x`` ``[rows, ...]`` (0 or more than it has: all) drawn at random with a
    fixed seed, the same for every run and seed, in their original order: the full file's test
    split is ordered (apparently by digit), so its first rows would be one class."""
    if n == 0 or n >= x.shape[0]:
        return x
    rows = torch.from_numpy(subset_rows(x.shape[0], n, seed=SUBSET_SEED + 1)).to(x.device)
    return x[rows]


def fork_rng(device: torch.device):
    """``torch.random.fork_rng`` for the CPU and, on CUDA, ``device``: the global RNG streams are
    restored on exit."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def check_train_size(data: dict[str, Tensor], batch: int) -> None:
    """A named error when the training split holds fewer rows than one minibatch."""
    if data["train"].shape[0] < batch:
        raise ValueError(
            f"n_train: {data['train'].shape[0]} training images are fewer than batch={batch}"
        )


def load_static_mnist(
    data_path: str, limits: dict[str, int], batch: int, device: torch.device
) -> tuple[dict[str, Tensor], bool]:
    """The statically binarized splits {"train", "valid", "test"} ``[n, 784]``, each cut to
    ``limits[split]`` rows (0: all) by :func:`limit_rows`, and whether the full file (not the
    packaged subset) was read.  ``data_path``: a file, "" ($STOCHGRAD_MNIST, else the subset)
    or ``SUBSET``."""
    subset = data_path == SUBSET
    path = None if subset or not data_path else data_path
    full = mnist_source(path, subset=subset) != "packaged-subset"
    data = {}
    for split in ("train", "valid", "test"):
        x = load_binarized_mnist(path, split, subset=subset, device=device)
        data[split] = limit_rows(x, limits.get(split, 0))
    check_train_size(data, batch)
    return data, full


def warn_if_subset(ctx, full: bool) -> None:
    """Warn when a preset other than quick runs on the packaged subset."""
    if ctx.preset != "quick" and not full:
        ctx.warn(
            f"the {ctx.preset} preset is running on the packaged subset of 2,000 training "
            "images; give --set data_path=... or $STOCHGRAD_MNIST for the full binarized MNIST"
        )
