"""Uploaded or drawn images -> the pixels a run's model reads, with one clear message for each kind of bad input."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np

from harness.errors import HarnessError

# A drawing is a few KB and a phone photo a few MB; anything larger is refused before it is decoded.
MAX_UPLOAD_BYTES = 8_000_000
# Decoded size limit (a small PNG can declare a huge canvas: a decompression bomb). It bounds every intermediate
# too: the padded canvas an odd shape is fitted on is shrunk first where it would be larger.
MAX_PIXELS = 40_000_000
# A strip much longer than wide (46000 x 1 in 150 bytes) is no picture of anything the datasets hold.
MAX_ASPECT = 20
# An image whose pixels all lie within this much of one grey (on a 0..1 scale) shows nothing to compare.
BLANK_SPREAD = 4 / 255
READABLE = "PNG, JPEG, GIF, BMP or WebP"


class InputError(HarnessError):
    """An image the demo cannot use: the page shows the message, the server goes on serving."""


def from_base64(text: object, what: str = "image") -> bytes:
    """Bytes of a base64 string or a data URL (what a canvas's toDataURL and a FileReader give)."""
    if not isinstance(text, str) or not text:
        raise InputError(f"no {what} received: draw on the canvas or drop an image file")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise InputError(f"the {what} is larger than {MAX_UPLOAD_BYTES / 1e6:.0f} MB; the demo takes smaller images")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"the {what} did not arrive as base64 image data") from None


def decode(data: bytes, shape: tuple[int, int, int], source: str = "file") -> tuple[np.ndarray, list[str]]:
    """(pixels in [0, 1] as float32 (C, H, W) at the model's shape, notices about what was changed to get there).

    Images are made to look like the dataset's: light marks on a dark background at its resolution and channel
    count. Each change is said in a notice; what cannot be used (not an image, too large, blank) is an InputError.
    """
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if not data:
        raise InputError("no image received: draw on the canvas or drop an image file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"the file is {len(data) / 1e6:.1f} MB; the demo takes images up to "
                         f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise InputError(f"the image is {image.width}x{image.height} pixels; the demo takes images up to "
                                 f"{MAX_PIXELS // 1_000_000} megapixels")
            if max(image.width, image.height) > MAX_ASPECT * max(1, min(image.width, image.height)):
                raise InputError(f"the image is {image.width}x{image.height} pixels, more than {MAX_ASPECT} times "
                                 "longer than it is wide; crop it to the part to compare")
            image.load()
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            ValueError, SyntaxError, EOFError):
        raise InputError(f"that file is not an image the demo can read ({READABLE})") from None
    notices = []
    image = _flattened(image)
    colour = image.mode == "RGB" and not _grey(image)
    if channels == 1:
        if colour:
            notices.append("colour image converted to grey-scale: this model reads one channel")
        image = image.convert("L")
    else:
        image = image.convert("RGB")
    if image.size != (width, height):
        notices.append(f"resized from {image.width}x{image.height} to the dataset's {width}x{height}"
                       + (" (padded to its shape first)" if image.width * height != image.height * width else ""))
        image = _fitted(image, width, height)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if float(pixels.max() - pixels.min()) <= BLANK_SPREAD:
        raise InputError("the canvas is empty: draw something first" if source == "canvas"
                         else "the image is blank (one flat colour): nothing to compare")
    if _border(pixels).mean() > 0.5:
        # The datasets draw light marks on black; a dark drawing on white paper is the same drawing inverted.
        pixels = 1.0 - pixels
        notices.append("inverted to light on dark, as the dataset's images are")
    return np.ascontiguousarray(pixels, dtype=np.float32), notices


def _flattened(image):
    """RGB or L without transparency: transparent parts become white (paper), palettes become colours."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "I", "I;16", "F"):
        return _scaled_grey(image)
    return image.convert("RGB")


def _scaled_grey(image):
    """8-bit grey from 1-bit, 16-bit or float images, stretched to their own range."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def _grey(image) -> bool:
    """Whether an RGB image's three channels are equal (a grey picture saved as RGB is not a colour image)."""
    values = np.asarray(image, dtype=np.int16)
    return bool(np.abs(values - values.mean(axis=2, keepdims=True)).max() <= 2)


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[:, 0, :].ravel(), pixels[:, -1, :].ravel(), pixels[:, :, 0].ravel(),
                           pixels[:, :, -1].ravel()])


def _fitted(image, width: int, height: int):
    """The image padded to the target's aspect ratio with its border's colour, then resampled to the target size."""
    from PIL import Image

    pixels = np.asarray(image)
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).mean(axis=0)
    fill = int(round(float(edge))) if image.mode == "L" else tuple(int(round(float(v))) for v in edge)
    size = canvas_size(image.width, image.height, width, height)
    if size[0] * size[1] > MAX_PIXELS:  # shrink first, so that the padded canvas stays within the pixel budget
        factor = (size[0] * size[1] / MAX_PIXELS) ** 0.5
        image = image.resize((max(1, int(image.width / factor)), max(1, int(image.height / factor))),
                             Image.Resampling.BOX)
        size = canvas_size(image.width, image.height, width, height)
    canvas = Image.new(image.mode, size, fill)
    canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
    # Area averaging when shrinking keeps thin strokes; bilinear when enlarging a tiny image.
    method = Image.Resampling.BOX if canvas.width >= width else Image.Resampling.BILINEAR
    return canvas.resize((width, height), method)


def canvas_size(image_width: int, image_height: int, width: int, height: int) -> tuple[int, int]:
    """The canvas an image is padded onto to take the target's aspect ratio (the image centred, nothing cut)."""
    scale = max(image_width / width, image_height / height)
    return max(image_width, round(width * scale)), max(image_height, round(height * scale))
