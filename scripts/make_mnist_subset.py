"""Regenerate the MNIST subset shipped in the package (src/stochgrad/data/binarized_mnist_subset.npz).

It holds 2000 train, 500 valid and 500 test rows of the full statically binarized file, drawn
at random with a fixed seed and kept in file order (the full test split is ordered, apparently
by digit), bit-packed.  Usage, from the repository root:

    python3 scripts/make_mnist_subset.py [--source ../shared/data/binarized_mnist.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stochgrad.data import write_mnist_subset
from stochgrad.data.mnist import SUBSET_FILE

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "binarized_mnist.npz",
        help="the full file (default: ../shared/data/binarized_mnist.npz beside the repository)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "src" / "stochgrad" / "data" / SUBSET_FILE
    )
    args = parser.parse_args()
    out = write_mnist_subset(args.source, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
