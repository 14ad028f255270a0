"""Fit a downloaded article image under a platform's byte limit by downscaling (Pillow).

An image over the limit is re-encoded smaller instead of being dropped: a photo becomes a
JPEG (quality 85, then lower, then smaller sides); an image with transparency stays PNG
while it can fit, and is flattened onto white as a JPEG only when it cannot. EXIF
orientation is applied first (re-encoding drops the tag). Anything Pillow cannot read, or
too many pixels to decode safely, is dropped with a warning: a post never fails for its image.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import PurePosixPath

from PIL import Image, ImageOps, UnidentifiedImageError

from autopublish.platforms.base import ImageFile

log = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000  # refuse to decode more (a decompression bomb); a 50-megapixel photo still fits
MIN_SIDE = 160  # never shrink the longer side below this
_JPEG_QUALITIES = (85, 75, 65)
_SHRINK = 0.75  # each further attempt scales both sides by this


def fit_image(image: ImageFile, max_bytes: int, *, label: str, channel: str) -> ImageFile | None:
    """``image`` itself when it is within ``max_bytes``, else a smaller re-encoding, else None."""
    if len(image.data) <= max_bytes:
        return image
    extra = {"channel": channel}
    try:
        picture = _open(image.data)
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        log.warning("%s: the article image is over %d bytes and could not be read to make it smaller (%s); posting without it",
                    label, max_bytes, type(exc).__name__, extra=extra)
        return None
    fitted = _shrink(picture, len(image.data), max_bytes)
    if fitted is None:
        log.warning("%s: the article image could not be made smaller than %d bytes; posting without it", label, max_bytes, extra=extra)
        return None
    data, fmt, (width, height) = fitted
    log.info("%s: the article image was %d bytes, over the %d-byte limit; sent as a %dx%d %s of %d bytes",
             label, len(image.data), max_bytes, width, height, fmt, len(data), extra=extra)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    name = str(PurePosixPath(image.name).with_suffix(suffix)) if "." in image.name else image.name + suffix
    return ImageFile(data, "image/png" if fmt == "PNG" else "image/jpeg", name)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        picture = Image.open(io.BytesIO(data))
        if picture.width * picture.height > MAX_PIXELS:
            raise Image.DecompressionBombError(f"{picture.width}x{picture.height} pixels")
        picture.load()  # the first frame of an animation
    return ImageOps.exif_transpose(picture)


def _has_alpha(picture: Image.Image) -> bool:
    return picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info)


def _shrink(picture: Image.Image, size: int, max_bytes: int) -> tuple[bytes, str, tuple[int, int]] | None:
    """Encode smaller until it fits: (bytes, "JPEG" | "PNG", (width, height)), or None."""
    # A first guess: encoded size grows with the pixel count, so scale the sides by sqrt.
    scale = min(1.0, (max_bytes / size) ** 0.5)
    if _has_alpha(picture):
        rgba = picture.convert("RGBA")
        for attempt in range(8):
            resized = _resized(rgba, scale * _SHRINK**attempt)
            data = _encode(resized, "PNG", 0)
            if data is not None and len(data) <= max_bytes:
                return data, "PNG", resized.size
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        picture = flat
    rgb = picture.convert("RGB")
    for attempt in range(8):
        resized = _resized(rgb, scale * _SHRINK**attempt)
        for quality in _JPEG_QUALITIES:
            data = _encode(resized, "JPEG", quality)
            if data is not None and len(data) <= max_bytes:
                return data, "JPEG", resized.size
        if max(resized.size) <= MIN_SIDE:
            break
    return None


def _resized(picture: Image.Image, scale: float) -> Image.Image:
    if scale >= 1.0:
        return picture
    longest = max(picture.size)
    scale = max(scale, MIN_SIDE / longest) if longest > MIN_SIDE else 1.0
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS)


def _encode(picture: Image.Image, fmt: str, quality: int) -> bytes | None:
    buffer = io.BytesIO()
    try:
        if fmt == "JPEG":
            picture.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
        else:
            picture.save(buffer, "PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return buffer.getvalue()
