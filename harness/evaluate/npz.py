"""Embeddings a user brings (`harness evaluate FILE.npz`): plain numeric arrays only, their declared sizes checked
against this machine's memory before anything is read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# The arrays of an .npz are read only after their declared sizes are checked against this much memory.
MEMORY_FRACTION = 0.5


def read(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The named arrays of an .npz archive: plain numeric arrays only, sizes checked before anything is read."""
    import zipfile

    import numpy as np

    if not path.exists():
        raise HarnessError(f"{path}: no such file")
    if not path.is_file():
        raise HarnessError(f"{path}: not a file")
    plain = f"{path}: not a .npz archive of plain numeric arrays (write it with numpy.savez)"
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        if path.read_bytes()[:6] == b"\x93NUMPY":
            raise HarnessError(f"{path}: a single .npy array; save query, query_labels [, reference, "
                               "reference_labels] together with numpy.savez") from None
        raise HarnessError(plain) from None
    limit = MEMORY_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    arrays, total = {}, 0
    with archive:
        members = {m.removesuffix(".npy"): m for m in archive.namelist()}
        for name in [n for n in names if n in members]:
            try:
                with archive.open(members[name]) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(handle)
            except (OSError, ValueError, zipfile.BadZipFile, EOFError):
                raise HarnessError(f"{plain}: array '{name}' has no readable header") from None
            if dtype.hasobject or dtype.kind not in "biuf":
                raise HarnessError(f"{path}: array '{name}' holds {dtype} values; expected numbers")
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
            if total > limit:
                raise HarnessError(f"{path}: array '{name}' declares shape {shape} ({total / 1e9:.1f} GB so far), "
                                   f"more than half this machine's memory; score it in parts")
        try:
            with np.load(path, allow_pickle=False) as loaded:
                for name in [n for n in names if n in members]:
                    arrays[name] = loaded[name]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            raise HarnessError(plain) from None
    return arrays


def embeddings(path: Path) -> dict[str, Any]:
    """query and query_labels, and reference and reference_labels where the file has them."""
    arrays = read(path, ("query", "query_labels", "reference", "reference_labels"))
    missing = [key for key in ("query", "query_labels") if key not in arrays]
    if missing:
        raise HarnessError(f"{path}: missing array(s) {', '.join(missing)}; expected query, query_labels and "
                           f"optionally reference, reference_labels (found: {', '.join(arrays) or 'none'})")
    return arrays
