"""stochgrad.data: the packaged MNIST subset against the full file, the named errors of a bad
file, dynamic binarization (z-tests in float64) and the 25-Gaussian grid of 000 App. F.3."""

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stochgrad.data import (
    ENV_VAR,
    SPLITS,
    binarize,
    grid_mixture,
    grid_of_gaussians,
    load_binarized_mnist,
    load_grey_mnist,
    mnist_source,
    write_mnist_subset,
)
from stochgrad.data.mnist import SUBSET_SIZES, subset_rows

FULL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binarized_mnist.npz"
needs_full = pytest.mark.skipif(not FULL.is_file(), reason="../shared/data is absent")
Z = 4.5  # two-sided bound in standard errors for the z-tests below


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _write(path: Path, **arrays) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


def _small_binary(path: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    return _write(path, **{s: rng.integers(0, 2, (n, 784), dtype=np.uint8) for s in SPLITS})


# ---------------------------------------------------------------- the packaged subset


def test_subset_loads_without_a_path():
    for split in SPLITS:
        x = load_binarized_mnist(split=split)
        assert x.shape == (SUBSET_SIZES[split], 784) and x.dtype == torch.float32
        assert set(x.unique().tolist()) == {0.0, 1.0}
        torch.testing.assert_close(x, load_binarized_mnist(split=split, subset=True))
    assert mnist_source() == "packaged-subset"
    # digits, not noise: about 13 % of the pixels are on, and rows differ
    assert 0.1 < load_binarized_mnist().mean() < 0.17
    assert load_binarized_mnist(split="test").unique(dim=0).shape[0] == SUBSET_SIZES["test"]


@needs_full
def test_subset_is_a_seeded_random_choice_of_rows_of_the_full_file():
    """The packaged rows are subset_rows(...) of each split: random, so that the test split,
    which the full file orders (by digit), is represented, not only its first class."""
    for split in SPLITS:
        full = load_binarized_mnist(FULL, split, dtype=torch.uint8)
        assert full.shape == ({"train": 50000}.get(split, 10000), 784)
        sub = load_binarized_mnist(split=split, subset=True, dtype=torch.uint8)
        rows = torch.from_numpy(subset_rows(len(full), len(sub)))
        assert torch.equal(sub, full[rows])
        assert rows.max() > 0.9 * len(full)  # spread over the whole split


@needs_full
def test_subset_regenerates_from_the_full_file(tmp_path):
    out = write_mnist_subset(FULL, tmp_path / "subset.npz")
    for split in SPLITS:
        assert torch.equal(load_binarized_mnist(out, split), load_binarized_mnist(split=split))


@needs_full
def test_environment_variable_and_path_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, os.fspath(FULL))
    assert mnist_source() == os.fspath(FULL)
    assert load_binarized_mnist(split="valid").shape == (10000, 784)
    assert load_binarized_mnist(split="valid", subset=True).shape == (500, 784)
    small = _small_binary(tmp_path / "small.npz")
    assert load_binarized_mnist(small, "valid").shape == (6, 784)  # the argument wins


def test_splits_join_and_dtype(tmp_path):
    path = _small_binary(tmp_path / "d.npz")
    both = load_binarized_mnist(path, "train+test", dtype=torch.float64)
    assert both.dtype == torch.float64 and both.shape == (12, 784)
    assert torch.equal(both[6:], load_binarized_mnist(path, "test", dtype=torch.float64))
    raw = np.load(path)["train"]
    assert torch.equal(load_binarized_mnist(path, dtype=torch.uint8), torch.from_numpy(raw))
    # a float or bool file in {0, 1} is binary as well
    flt = _write(tmp_path / "f.npz", **{s: raw.astype(np.float32) for s in SPLITS})
    assert torch.equal(load_binarized_mnist(flt, dtype=torch.uint8), torch.from_numpy(raw))


# ---------------------------------------------------------------- errors naming the file


def test_missing_file_names_the_path(tmp_path, monkeypatch):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz.*does not exist.*train, valid, test"):
        load_binarized_mnist(path)
    monkeypatch.setenv(ENV_VAR, os.fspath(path))
    with pytest.raises(FileNotFoundError, match=f"nope.npz' \\(from {ENV_VAR}\\)"):
        load_binarized_mnist()
    with pytest.raises(ValueError, match=f"{tmp_path.name}.*is not a file"):
        load_binarized_mnist(tmp_path)


@pytest.mark.parametrize("kind", ["text", "npy", "truncated zip"])
def test_not_an_npz_names_the_path(tmp_path, kind):
    path = tmp_path / "bad.npz"
    if kind == "text":
        path.write_text("0,1,0\n")
    elif kind == "npy":
        with path.open("wb") as fh:
            np.save(fh, np.zeros((3, 784), np.uint8))
    else:
        path.write_bytes(_small_binary(tmp_path / "ok.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"bad\.npz.*(not an \.npz|not an .npz|cannot be read)"):
        load_binarized_mnist(path)


def test_missing_array_names_path_and_arrays(tmp_path):
    path = _write(tmp_path / "m.npz", training=np.zeros((2, 784), np.uint8))
    with pytest.raises(ValueError, match=r"m\.npz' has no array 'train' \(it has training\)"):
        load_binarized_mnist(path)


@pytest.mark.parametrize("shape", [(784,), (5, 783), (5, 28, 28), (0, 784)])
def test_wrong_shape_names_the_path(tmp_path, shape):
    path = _write(tmp_path / "s.npz", train=np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match=r"s\.npz'.*'train' has shape.*expected \[n, 784\]"):
        load_binarized_mnist(path)


@pytest.mark.parametrize("value", [2, 255, -1, 0.5])
def test_values_outside_01_name_the_path(tmp_path, value):
    arr = np.zeros((3, 784), np.float32 if value == 0.5 else np.int16)
    arr[1, 7] = value
    path = _write(tmp_path / "v.npz", valid=arr)
    with pytest.raises(ValueError, match=r"v\.npz'.*'valid' has values outside \{0, 1\}"):
        load_binarized_mnist(path, "valid")


def test_bad_arguments(tmp_path):
    path = _small_binary(tmp_path / "d.npz")
    for split in ("training", "train+", "", "TEST"):
        with pytest.raises(ValueError, match=r"split must be one of train, valid, test.*d\.npz"):
            load_binarized_mnist(path, split)
    with pytest.raises(ValueError, match="either path .* or subset=True"):
        load_binarized_mnist(path, subset=True)
    with pytest.raises(TypeError, match="path must be"):
        load_binarized_mnist(3)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        load_binarized_mnist(path, dtype=np.float32)
    with pytest.raises(ValueError, match="sizes must give"):
        write_mnist_subset(path, tmp_path / "o.npz", {"train": 2})
    with pytest.raises(ValueError, match=r"sizes\['valid'\] = 7 but .*d\.npz' has 6 valid rows"):
        write_mnist_subset(path, tmp_path / "o.npz", {"train": 2, "valid": 7, "test": 1})


# ---------------------------------------------------------------- dynamic binarization


def test_dynamic_binarization_of_a_binary_source_says_static_only(tmp_path):
    msg = "already binary .*only static binarization is available for this source"
    with pytest.raises(ValueError, match="packaged subset.*" + msg):
        load_grey_mnist()
    with pytest.raises(ValueError, match=r"d\.npz'.*" + msg):
        load_grey_mnist(_small_binary(tmp_path / "d.npz"))


def test_grey_levels_load(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (4, 784), dtype=np.uint8)
    path = _write(tmp_path / "g.npz", train=raw, test=raw.astype(np.float64) / 255)
    grey = load_grey_mnist(path, dtype=torch.float64)
    torch.testing.assert_close(grey, torch.from_numpy(raw).double() / 255)
    torch.testing.assert_close(load_grey_mnist(path, "test", dtype=torch.float64), grey)
    bad = _write(tmp_path / "b.npz", train=raw.astype(np.float32))  # 0..255 as floats
    with pytest.raises(ValueError, match=r"b\.npz'.*outside \[0, 1\]"):
        load_grey_mnist(bad)
    wide = raw.astype(np.int16)
    torch.testing.assert_close(
        load_grey_mnist(_write(tmp_path / "i.npz", train=wide)), grey.float()
    )
    wide[0, 0] = 300
    with pytest.raises(ValueError, match=r"w\.npz'.*outside 0\.\.255"):
        load_grey_mnist(_write(tmp_path / "w.npz", train=wide))
    with pytest.raises(ValueError, match=r"grey must hold grey levels in \[0, 1\]"):
        binarize(torch.tensor([0.2, float("nan")]))
    with pytest.raises(TypeError, match="grey must be a floating tensor"):
        binarize(torch.tensor([0, 1]))


def _bernoulli_z(samples: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """z-scores of the column means of 0/1 samples ``[n, k]`` against p ``[k]`` (0 < p < 1)."""
    n = samples.shape[0]
    return (samples.mean(0) - p) / (p * (1 - p) / n).sqrt()


def test_binarize_has_bernoulli_marginals():
    # false-alarm rate: 7 z-tests at |z| < 4.5, below 1e-4 in all
    p = torch.tensor([0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99], dtype=torch.float64)
    n = 40_000
    grey = p.expand(n, -1).contiguous()
    gen = torch.Generator().manual_seed(0)
    x = binarize(grey, generator=gen)
    assert x.dtype == torch.float64 and set(x.unique().tolist()) <= {0.0, 1.0}
    assert _bernoulli_z(x, p).abs().max() < Z
    # the pixels are independent: the correlation of neighbouring columns is ~ N(0, 1/n)
    xc = x - x.mean(0)
    corr = (xc[:, :-1] * xc[:, 1:]).mean(0) / (xc[:, :-1].std(0) * xc[:, 1:].std(0))
    assert (corr.abs() * math.sqrt(n)).max() < Z
    # fresh samples each call, the same with the same seed; 0 and 1 stay exact
    assert not torch.equal(binarize(grey[:100], gen), binarize(grey[:100], gen))
    again = binarize(grey, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    ends = binarize(torch.tensor([[0.0, 1.0]]).expand(1000, -1), gen)
    assert (ends[:, 0] == 0).all() and (ends[:, 1] == 1).all()
    # negative control: a threshold at 0.5 (static binarization) fails the same test
    assert _bernoulli_z((grey > 0.5).double(), p).abs().max() > Z


# ---------------------------------------------------------------- the 25-Gaussian grid


def _grid_checks(x: torch.Tensor) -> torch.Tensor:
    """z-scores of moments whose exact values for the grid (000 App. F.3) are known.

    Per coordinate: mean 0, variance 8 (of the means {-4, ..., 4}) + 0.1; E cos(π x) =
    exp(-π² 0.1 / 2) since the means are even integers; E cos(π x / 2) = exp(-π² 0.1 / 8) / 5
    since cos(π μ / 2) is 1, -1, 1, -1, 1 on the five means."""
    n = x.shape[0]
    stats = {
        "mean": (x, 0.0),
        "var": (x**2, 8.1),
        "cos_pi": (torch.cos(math.pi * x), math.exp(-(math.pi**2) * 0.1 / 2)),
        "cos_half_pi": (torch.cos(math.pi * x / 2), math.exp(-(math.pi**2) * 0.1 / 8) / 5),
        "xy": ((x[:, :1] * x[:, 1:]).expand(-1, 2), 0.0),
    }
    z = [(v.mean(0) - exact) / (v.std(0) / math.sqrt(n)) for v, exact in stats.values()]
    return torch.cat(z)


def test_grid_mixture_means_and_variance():
    mix = grid_mixture()
    axis = [-4.0, -2.0, 0.0, 2.0, 4.0]
    expected = torch.tensor([[a, b] for a in axis for b in axis], dtype=torch.float64)
    assert torch.equal(mix.means, expected)
    torch.testing.assert_close(mix.covariances, 0.1 * torch.eye(2).expand(25, 2, 2).double())
    torch.testing.assert_close(mix.weights, torch.full((25,), 1 / 25, dtype=torch.float64))
    x = torch.tensor([[0.3, -1.7]], dtype=torch.float64)  # log-density and score come along
    assert torch.isfinite(mix.log_prob(x)).all() and mix.score(x).shape == (1, 2)


def test_grid_samples_have_the_right_moments():
    # false-alarm rate: 10 z-tests at |z| < 4.5, below 1e-4 in all
    x = grid_of_gaussians(200_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (200_000, 2) and x.dtype == torch.float64
    assert _grid_checks(x).abs().max() < Z
    assert grid_of_gaussians(3).dtype == torch.float32
    g = torch.Generator().manual_seed(1)
    first = grid_of_gaussians(5, g)
    assert torch.equal(first, grid_of_gaussians(5, torch.Generator().manual_seed(1)))
    # negative controls: variance 0.05 instead of 0.1, or a grid on [-3, 3]², are caught
    k = torch.randint(0, 25, (200_000,), generator=g)
    means = grid_mixture().means
    eps = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    assert _grid_checks(means[k] + 0.05**0.5 * eps).abs().max() > Z
    assert _grid_checks(0.75 * means[k] + 0.1**0.5 * eps).abs().max() > Z
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n must be a positive int"):
            grid_of_gaussians(n)


def test_readme_data_example_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Data\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    namespace: dict = {}
    exec(compile(code, "README", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["x"].shape == (SUBSET_SIZES["train"], 784)
    assert namespace["toy"].shape == (512, 2)
    assert set(namespace["batch"].unique().tolist()) <= {0.0, 1.0}
