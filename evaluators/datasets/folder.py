"""Image-folder datasets: any ``<root>/train/<class>/*.jpg|png|...`` and ``<root>/test/<class>/...``
tree, decoded with PIL into uint8 arrays.

Decoding a folder of JPEGs is slow, so it is done once: the arrays go into a ``.npz`` beside a
JSON manifest in a cache folder, keyed by the folder's listing (paths, sizes, modification
times), and later loads of an unchanged folder read those instead. A corrupt image, a missing
split or an empty class folder raises ``ValueError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evaluators.datasets.base import Dataset, ImageSet, default_cache_dir
from nas.checks import is_int
from nas.io import atomic_path, atomic_write_json, parse_json_object

__all__ = ["IMAGE_EXTENSIONS", "list_split", "load_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
logger = logging.getLogger(__name__)
_FOLDER_CACHE_FORMAT = "litenas.image_folder_cache"
_FOLDER_CACHE_VERSION = 1


def list_split(root: Path, split: str) -> dict[str, list[Path]]:
    """``{class name: image paths}`` of ``<root>/<split>/<class>/*``, sorted; ``ValueError`` naming
    the folder when it is missing, empty, or a class has no image (shared with the streaming loader,
    :mod:`evaluators.training.stream`)."""
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise ValueError(f"{folder}: missing; an image-folder dataset needs {root}/train/<class>/ and "
                         f"{root}/test/<class>/ (found: {', '.join(found) or 'nothing'})")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder}: no class folders")
    out = {}
    for c in classes:
        files = sorted(p for p in c.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{c}: empty class folder (no {'/'.join(IMAGE_EXTENSIONS)} files)")
        out[c.name] = files
    return out


def _listing_key(root: Path, listing: dict[str, dict[str, list[Path]]], mode: str, size: int | None) -> str:
    h = hashlib.sha256(json.dumps({"version": _FOLDER_CACHE_VERSION, "mode": mode, "size": size}).encode())
    for split, classes in listing.items():
        for files in classes.values():
            for p in files:
                st = p.stat()
                h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(split.encode())
    return h.hexdigest()[:20]


def _decode(path: Path, mode: str, size: int | None, expect: tuple[int, ...] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if expect is not None and arr.shape != expect:
        raise ValueError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, the others are "
                         f"{expect[1]}x{expect[0]}; pass size= to resize every image")
    return arr


def load_image_folder(root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                      mode: str = "RGB", size: int | None = None, name: str | None = None,
                      progress: bool = True) -> Dataset:
    """Load ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` as uint8 arrays.

    Class names are the train split's folder names, sorted; the test split must use the same
    names. Every image must have the same size unless ``size`` resizes them all to
    ``size x size``. ``mode`` is the PIL mode (``RGB`` or ``L``). The decoded arrays are cached in
    ``cache_dir`` (default :func:`default_cache_dir` ``/datasets``) as ``<key>.npz`` plus
    ``<key>.json``, where the key covers the folder listing, so a changed folder is decoded again.
    ``name`` defaults to the folder's name.
    """
    root = Path(root).expanduser().resolve()
    name = name or root.name
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if size is not None and (not is_int(size) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    listing = {split: list_split(root, split) for split in ("train", "test")}
    classes = tuple(listing["train"])
    unknown = sorted(set(listing["test"]) - set(classes))
    if unknown:
        raise ValueError(f"{root / 'test' / unknown[0]}: class {unknown[0]!r} is not in {root / 'train'}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "datasets"
    key = _listing_key(root, listing, mode, size)
    manifest_path, arrays_path = cache / f"{key}.json", cache / f"{key}.npz"
    if manifest_path.exists() and arrays_path.exists():
        try:
            manifest = parse_json_object(manifest_path.read_bytes(), str(manifest_path), "a dataset cache manifest")
            with np.load(arrays_path, allow_pickle=False) as z:
                train = ImageSet(z["train_images"], z["train_labels"])
                test = ImageSet(z["test_images"], z["test_labels"])
            return Dataset(name, tuple(manifest["classes"]), train, test, manifest["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            logger.warning("decoding %s again: its cache %s is unreadable (%s)", root, arrays_path, exc)

    splits = {}
    total = sum(len(f) for cls in listing.values() for f in cls.values())
    with tqdm(total=total, desc=f"decoding {root.name}", unit="img", disable=not progress) as bar:
        expect: tuple[int, ...] | None = None
        for split, cls in listing.items():
            images, labels = [], []
            for class_name, files in cls.items():
                label = classes.index(class_name)
                for p in files:
                    arr = _decode(p, mode, size, expect)
                    expect = arr.shape
                    images.append(arr)
                    labels.append(label)
                    bar.update()
            splits[split] = ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64))
    ds = Dataset(name, classes, splits["train"], splits["test"])
    with atomic_path(arrays_path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, train_images=ds.train.images, train_labels=ds.train.labels,
                 test_images=ds.test.images, test_labels=ds.test.labels)
    atomic_write_json(manifest_path, {
        "format": _FOLDER_CACHE_FORMAT, "version": _FOLDER_CACHE_VERSION, "source": str(root),
        "mode": mode, "size": size, "classes": list(classes), "fingerprint": ds.fingerprint,
        "train": len(ds.train), "test": len(ds.test), "shape": list(ds.train.images.shape[1:]),
    })
    return ds
