"""Lay the shared classification and segmentation sets out as `dncli task-train` and
`dncli cascade-train` read them, once.

    python benchmarks/cascade_data.py OUT [--shared ../shared/data]

* ``OUT/cifar10/{train,val,test}/<class>/NNNN.jpg``: the CIFAR-10 subset's JPEGs, bytes
  unchanged.  The last 50 training images of each class (0950-0999) become ``val`` (500
  images), so nothing is tuned on ``test`` (200 per class, 2,000).
* ``OUT/camvid/{train,val,test}/{images,masks}/<name>.png``: the CamVid subset at half
  resolution (240x180: images averaged over 2x2 blocks and rounded, masks sampled at the
  top-left pixel of each block) so that the CPU experiment stays affordable; the void class 11
  becomes 255, the ignore label.
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

CIFAR_VAL_FROM = 950
CAMVID_VOID = 11


def lay_out_cifar(archive: Path, out: Path) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zipped:
        for name in sorted(zipped.namelist()):
            parts = name.split("/")
            if not name.endswith(".jpg") or len(parts) != 3:
                continue
            split, label, file = parts
            if split == "train" and int(Path(file).stem) >= CIFAR_VAL_FROM:
                split = "val"
            target = out / split / label / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zipped.read(name))
            count += 1
    return count


def lay_out_camvid(source: Path, out: Path) -> int:
    count = 0
    for split in ("train", "val", "test"):
        for image_path in sorted((source / split).glob("*.png")):
            image = iio.imread(image_path).astype(np.float64)
            mask = iio.imread(source / f"{split}annot" / image_path.name)
            h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            half = image[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
            labels = mask[:h:2, :w:2].copy()
            labels[labels == CAMVID_VOID] = 255
            for folder, pixels in (("images", np.rint(half).astype(np.uint8)), ("masks", labels.astype(np.uint8))):
                target = out / split / folder / image_path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                iio.imwrite(target, pixels)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    archive = args.shared / "classification/cifar10_subset/cifar10_subset_jpg.zip"
    cifar = lay_out_cifar(archive, args.output / "cifar10")
    camvid = lay_out_camvid(args.shared / "segmentation/camvid_subset", args.output / "camvid")
    print(f"{cifar} CIFAR-10 images and {camvid} CamVid pairs under {args.output}")


if __name__ == "__main__":
    main()
