"""Synthesise a noisy training set once, for `dncli blindspot-train` (which never sees clean images).

    python benchmarks/blindspot_data.py OUT --channels 3 --sigma 25 SOURCE...
    python benchmarks/blindspot_data.py OUT --channels 1 --sigma-range 5,50 SOURCE...

Every image under the SOURCE folders (sorted, recursively) is read as 8-bit, converted to BT.601
luma for ``--channels 1`` (as BSD68 was made from CBSD68), and gets additive white Gaussian noise,
not clipped, with ``rng = numpy.random.default_rng([seed, index])`` (index in the sorted list).
With ``--sigma-range`` each image draws its own level uniformly from the range with that same
generator.  The noisy images are written as float32 TIFF (``OUT/00000.tif`` ...), which keeps the
noise exact; ``OUT/sigmas.tsv`` lists each file, its source and its level (0..255 scale), so the
set is documented and can be rebuilt bit for bit.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise_cli.engine.training.data import IMAGE_SUFFIXES, load_images  # noqa: E402
from denoise_cli.imgio.codec import Image, write_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="directory to create")
    parser.add_argument("sources", type=Path, nargs="+", help="directories of clean images")
    parser.add_argument("--channels", type=int, choices=(1, 3), required=True)
    level = parser.add_mutually_exclusive_group(required=True)
    level.add_argument("--sigma", type=float, help="one noise level for every image (0..255)")
    level.add_argument("--sigma-range", help="LOW,HIGH: a level per image, uniform in the range (0..255)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sigma_range:
        low, high = (float(v) for v in args.sigma_range.split(","))
    else:
        low = high = args.sigma
    if not 0 < low <= high <= 255:
        parser.error("noise levels must satisfy 0 < LOW <= HIGH <= 255")

    names = [p for folder in args.sources for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    # load_images walks the folders in the same sorted order, so names[i] is images[i]
    images = load_images(args.sources, args.channels)
    if len(names) != len(images):
        raise SystemExit("unexpected: some source images could not be used")
    args.output.mkdir(parents=True, exist_ok=False)
    lines = ["file\tsource\tsigma"]
    for index, (name, clean) in enumerate(zip(names, images)):
        rng = np.random.default_rng([args.seed, index])
        sigma = float(rng.uniform(low, high)) if high > low else low
        noisy = clean / 255.0 + rng.standard_normal(clean.shape) * sigma / 255.0
        target = args.output / f"{index:05d}.tif"
        write_image(Image(noisy.astype(np.float32), depth="32f", format="tiff"), target)
        lines.append(f"{target.name}\t{name}\t{sigma:.4f}")
    (args.output / "sigmas.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(images)} noisy images ({low:g}..{high:g}) in {args.output}")


if __name__ == "__main__":
    main()
