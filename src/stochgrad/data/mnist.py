"""Binarized MNIST: the statically binarized set of Larochelle & Murray (2011) as ``.npz``
arrays ``train`` [50000, 784], ``valid`` [10000, 784] and ``test`` [10000, 784] with pixels in
{0, 1}, a small subset of it shipped inside the package, and dynamic binarization of grey levels
(000 Table 1).

Which file is read: the ``path`` argument, else the environment variable ``STOCHGRAD_MNIST``,
else the packaged subset (2000 train, 500 valid and 500 test rows of the full file drawn at
random with a fixed seed, kept in file order, written by :func:`write_mnist_subset`; the full
file's test split is ordered, apparently by digit: its first rows would be one class).  An
archive may store its rows bit-packed (``np.packbits`` along the pixels, as the packaged subset
does): it then holds a scalar ``packed_pixels`` with the number of pixels per row.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

ENV_VAR = "STOCHGRAD_MNIST"
SPLITS = ("train", "valid", "test")
N_PIXELS = 784  # 28 x 28
SUBSET_FILE = "binarized_mnist_subset.npz"
SUBSET_SIZES = {"train": 2000, "valid": 500, "test": 500}
SUBSET_SEED = 0  # the packaged subset's rows: subset_rows(n_rows, n, SUBSET_SEED)
_PACKED = "packed_pixels"
_EXPECTED = f"an .npz archive with arrays {', '.join(SPLITS)} of shape [n, {N_PIXELS}]"


class _Source:
    """A resolved data file: where it is and how to name it in messages."""

    def __init__(self, path: Path | None, label: str) -> None:
        self.path, self.label = path, label  # path None: the packaged subset

    @contextmanager
    def open(self) -> Iterator[Any]:
        """The opened archive (``np.lib.npyio.NpzFile``); errors name the file."""
        if self.path is None:
            packaged = resources.files(__package__).joinpath(SUBSET_FILE)
            with packaged.open("rb") as fh, _open_npz(fh, self.label) as archive:
                yield archive
            return
        if not self.path.exists():
            raise FileNotFoundError(f"MNIST file {self.label} does not exist; expected {_EXPECTED}")
        if not self.path.is_file():
            raise ValueError(f"MNIST file {self.label} is not a file; expected {_EXPECTED}")
        with _open_npz(self.path, self.label) as archive:
            yield archive


@contextmanager
def _open_npz(file: Path | IO[bytes], label: str) -> Iterator[Any]:
    try:
        loaded = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        why = "neither a zip archive nor an .npy array" if "pickled" in str(e) else str(e)
        raise ValueError(f"MNIST file {label} is not an .npz archive ({why}); expected {_EXPECTED}")
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # the content is wrong, not a type
        raise ValueError(f"MNIST file {label} is a single .npy array, not {_EXPECTED}")  # noqa: TRY004
    with loaded:
        yield loaded


def _resolve(path: str | os.PathLike[str] | None, subset: bool) -> _Source:
    if path is not None and not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str, a path or None, got {type(path).__name__}")
    if subset:
        if path is not None:
            raise ValueError(f"give either path ({path}) or subset=True, not both")
        return _Source(None, f"<packaged subset stochgrad/data/{SUBSET_FILE}>")
    if path is not None:
        return _Source(Path(path), f"'{os.fspath(path)}'")
    env = os.environ.get(ENV_VAR)
    if env:
        return _Source(Path(env), f"'{env}' (from {ENV_VAR})")
    return _resolve(None, subset=True)


def mnist_source(path: str | os.PathLike[str] | None = None, subset: bool = False) -> str:
    """The file that :func:`load_binarized_mnist` reads for these arguments: the path as given
    (or as ``STOCHGRAD_MNIST`` gives it), or ``"packaged-subset"``.  Nothing is read."""
    source = _resolve(path, subset)
    return "packaged-subset" if source.path is None else os.fspath(source.path)


def _split_names(split: str, label: str) -> list[str]:
    names = split.split("+") if isinstance(split, str) else None
    if not names or any(name not in SPLITS for name in names):
        raise ValueError(
            f"split must be one of {', '.join(SPLITS)} or several joined by '+' "
            f"(e.g. 'train+valid'), got {split!r} (file {label})"
        )
    return names


def _read(archive: Any, name: str, label: str) -> np.ndarray:
    """Array ``name`` of the archive as ``[n, 784]`` (unpacked), shape and dtype checked."""
    if name not in archive.files:
        raise ValueError(
            f"MNIST file {label} has no array {name!r} (it has {', '.join(archive.files) or 'none'});"
            f" expected {_EXPECTED}"
        )
    try:
        arr = archive[name]
        packed = int(archive[_PACKED]) if _PACKED in archive.files else None
    except (TypeError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"MNIST file {label}: array {name!r} cannot be read ({e})") from e
    if packed is not None:
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != -(-packed // 8):
            raise ValueError(
                f"MNIST file {label}: bit-packed array {name!r} has shape {arr.shape} and dtype "
                f"{arr.dtype}; expected uint8 [n, {-(-packed // 8)}] for {packed} pixels"
            )
        arr = np.unpackbits(arr, axis=1, count=packed)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != N_PIXELS:
        raise ValueError(
            f"MNIST file {label}: array {name!r} has shape {arr.shape}; "
            f"expected [n, {N_PIXELS}] with n >= 1 (one flattened 28x28 image per row)"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"MNIST file {label}: array {name!r} has dtype {arr.dtype}; expected numbers"
        )
    return arr


def _is_binary(arr: np.ndarray) -> bool:
    if arr.dtype.kind in "bu":
        return arr.dtype.kind == "b" or int(arr.max()) <= 1
    return bool(((arr == 0) | (arr == 1)).all())


def _to_tensor(arr: np.ndarray, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=dtype)


def _check_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")


def _static(arr: np.ndarray, name: str, label: str) -> np.ndarray:
    """The pixels as uint8 in {0, 1}, or an error if they are not binary."""
    if not _is_binary(arr):
        raise ValueError(
            f"MNIST file {label}: array {name!r} has values outside {{0, 1}} "
            f"(min {arr.min()}, max {arr.max()}); expected statically binarized pixels"
        )
    return arr.astype(np.uint8, copy=False)


def _grey(arr: np.ndarray, name: str, label: str) -> np.ndarray:
    """Grey levels in [0, 1] from uint8 0..255 or floats in [0, 1]; binary pixels are refused."""
    if _is_binary(arr):
        raise ValueError(
            f"MNIST file {label}: array {name!r} is already binary (values in {{0, 1}}, no grey "
            "levels), so only static binarization is available for this source; use "
            "load_binarized_mnist, or give a grey-level file (uint8 0..255 or floats in [0, 1]) "
            "for dynamic binarization"
        )
    if arr.dtype.kind == "f":
        if not ((arr >= 0) & (arr <= 1)).all():
            raise ValueError(
                f"MNIST file {label}: float array {name!r} has values outside [0, 1] (or NaN); "
                "expected grey levels in [0, 1]"
            )
        return arr
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(
            f"MNIST file {label}: integer array {name!r} has values outside 0..255 "
            f"(min {arr.min()}, max {arr.max()}); expected grey levels"
        )
    return arr.astype(np.float64) / 255.0


def _load(
    source: _Source, split: str, convert: Callable[[np.ndarray, str, str], np.ndarray]
) -> np.ndarray:
    """The rows of ``split`` (names joined by '+' are concatenated), each array converted."""
    names = _split_names(split, source.label)
    with source.open() as archive:
        parts = [convert(_read(archive, name, source.label), name, source.label) for name in names]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def load_binarized_mnist(
    path: str | os.PathLike[str] | None = None,
    split: str = "train",
    *,
    subset: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Statically binarized MNIST, ``[n, 784]`` with values in {0, 1}.

    path: an ``.npz`` with arrays ``train``, ``valid``, ``test`` of shape ``[n, 784]``; None
    reads ``$STOCHGRAD_MNIST``, or the packaged subset if that is unset.  subset: read the
    packaged subset (2000 / 500 / 500 images; give no path).  split: ``"train"``, ``"valid"``,
    ``"test"`` or several joined by ``+`` (``"train+valid"``, concatenated in that order).
    A missing or unreadable file, a missing array, a wrong shape or values outside {0, 1} raise
    an error naming the file and what was expected.
    """
    _check_dtype(dtype)
    return _to_tensor(_load(_resolve(path, subset), split, _static), dtype, device)


def load_grey_mnist(
    path: str | os.PathLike[str] | None = None,
    split: str = "train",
    *,
    subset: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Grey-level MNIST in [0, 1], ``[n, 784]``, for dynamic binarization with :func:`binarize`
    (a fresh binary sample at every use, as for 000 Table 1).

    The file is found as in :func:`load_binarized_mnist`; its arrays hold grey levels as uint8
    in 0..255 (divided by 255) or floats in [0, 1].  A source whose pixels are already binary
    (the statically binarized file, the packaged subset) raises a ValueError: it has no grey
    levels, so only static binarization is available for it.
    """
    _check_dtype(dtype)
    return _to_tensor(_load(_resolve(path, subset), split, _grey), dtype, device)


def binarize(grey: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarization: x_i ~ Bernoulli(grey_i) independently, same shape and dtype.

    grey: a floating tensor of grey levels in [0, 1] (e.g. from :func:`load_grey_mnist`).
    """
    if not isinstance(grey, Tensor) or not grey.is_floating_point():
        raise TypeError(
            f"grey must be a floating tensor of grey levels in [0, 1], got "
            f"{grey.dtype if isinstance(grey, Tensor) else type(grey).__name__}"
        )
    if not ((grey >= 0) & (grey <= 1)).all():
        raise ValueError("grey must hold grey levels in [0, 1] (found values outside, or NaN)")
    return torch.bernoulli(grey, generator=generator)


def subset_rows(n_rows: int, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """``n`` of ``n_rows`` row indices drawn without replacement with ``seed``, ascending."""
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=n, replace=False))


def write_mnist_subset(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sizes: dict[str, int] | None = None,
) -> Path:
    """Write the packaged subset from the full file: ``sizes[split]`` rows of each split
    (default 2000 train, 500 valid, 500 test) drawn by :func:`subset_rows` (random with a fixed
    seed, in file order: a split ordered by class keeps every class), bit-packed with
    ``np.packbits`` into a compressed ``.npz``.  Returns the path written."""
    sizes = dict(SUBSET_SIZES if sizes is None else sizes)
    if set(sizes) != set(SPLITS) or any(
        not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes.values()
    ):
        raise ValueError(f"sizes must give a positive int for each of {SPLITS}, got {sizes}")
    src = _resolve(source, subset=False)
    arrays = {}
    for name in SPLITS:
        full = _load(src, name, _static)
        if sizes[name] > len(full):
            raise ValueError(
                f"sizes[{name!r}] = {sizes[name]} but {src.label} has {len(full)} {name} rows"
            )
        arrays[name] = np.packbits(full[subset_rows(len(full), sizes[name])], axis=1)
    out = Path(out)
    with out.open("wb") as fh:  # a file object: np.savez adds no '.npz' suffix
        np.savez_compressed(fh, **arrays, **{_PACKED: np.int64(N_PIXELS)})
    return out
