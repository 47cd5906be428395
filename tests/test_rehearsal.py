"""rehearsal: the generated CUB-shaped images are seeded and photo-sized, and the rates it reports are measured on
the files it was given (the rehearsal itself is run by hand: README, "scale rehearsal")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import rehearsal


def test_a_class_of_generated_images_is_seeded_photo_sized_and_in_cub_layout(tmp_path: Path):
    paths = rehearsal._write_class((tmp_path, 7, 3))
    again = rehearsal._write_class((tmp_path / "again", 7, 3))
    assert paths == again == [f"007.Rehearsal_7/Rehearsal_7_{k:04d}.jpg" for k in range(3)]
    for rel in paths:
        first, second = (tmp_path / "images" / rel).read_bytes(), (tmp_path / "again" / "images" / rel).read_bytes()
        assert first == second  # the same bytes from the same class id
        with Image.open(tmp_path / "images" / rel) as image:
            assert image.format == "JPEG" and max(image.size) == 500 and 300 <= min(image.size) < 450
    # One in six is portrait, as in CUB.
    shapes = [rehearsal._image(np.random.default_rng(s)).size for s in range(120)]
    portrait = sum(h > w for w, h in shapes) / len(shapes)
    assert abs(portrait - rehearsal.PORTRAIT_SHARE) < 0.1


@pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")  # torchvision 0.29 on decode_jpeg
def test_decode_rates_are_positive_for_every_stage_and_leave_a_cache_at_the_training_size(tmp_path: Path):
    rehearsal._write_class((tmp_path, 1, 2))
    paths = sorted((tmp_path / "images").rglob("*.jpg"))
    rates = rehearsal.decode_rates(paths, tmp_path)
    assert set(rates) == {"pil_decode", "torchvision_decode_jpeg", "train_view", "test_view",
                          "train_view_from_256px_cache"} and all(r > 0 for r in rates.values())
    for cached in (tmp_path / "cache").iterdir():
        with Image.open(cached) as image:
            assert min(image.size) == rehearsal.CACHE_SHORT_SIDE
