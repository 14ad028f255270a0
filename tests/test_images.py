"""Images over a platform's byte limit are downscaled (Pillow), not dropped."""

from __future__ import annotations

import io
import logging
import random

import pytest
from PIL import Image

from autopublish.platforms.base import ImageFile
from autopublish.platforms.images import fit_image
from tests.helpers import noise_image


def _decoded(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def test_an_image_within_the_limit_is_sent_unchanged():
    original = ImageFile(noise_image(50, 40), "image/png", "a.png")
    assert fit_image(original, len(original.data), label="T", channel="c") is original


def test_a_big_photo_becomes_a_smaller_jpeg_with_its_aspect_ratio(caplog):
    data = noise_image(1600, 900)
    assert len(data) > 4_000_000
    with caplog.at_level(logging.INFO, logger="autopublish"):
        fitted = fit_image(ImageFile(data, "image/png", "kunjungan.png"), 1_000_000, label="Bluesky", channel="sky")
    assert fitted is not None and len(fitted.data) <= 1_000_000
    assert (fitted.content_type, fitted.name) == ("image/jpeg", "kunjungan.jpg")
    picture = _decoded(fitted.data)
    assert picture.format == "JPEG" and picture.width < 1600
    assert abs(picture.width / picture.height - 16 / 9) < 0.02
    assert "over the 1000000-byte limit" in caplog.text


def test_transparency_stays_png_when_it_can():
    fitted = fit_image(ImageFile(noise_image(900, 900, mode="RGBA"), "image/png", "logo.png"), 1_000_000, label="T", channel="c")
    assert fitted is not None and len(fitted.data) <= 1_000_000 and fitted.content_type == "image/png"
    assert _decoded(fitted.data).mode == "RGBA"


def test_exif_orientation_is_applied_before_reencoding():
    picture = Image.frombytes("RGB", (1200, 600), random.Random(2).randbytes(1200 * 600 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=98, exif=exif)
    fitted = fit_image(ImageFile(buffer.getvalue(), "image/jpeg", "p.jpg"), 300_000, label="T", channel="c")
    assert fitted is not None
    shown = _decoded(fitted.data)
    assert shown.height > shown.width  # portrait, as a browser shows the original


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\0" * 2_000_000, b"GIF89a" + b"x" * 2_000_000])
def test_an_unreadable_image_over_the_limit_is_dropped_with_a_warning(data, caplog):
    with caplog.at_level(logging.WARNING, logger="autopublish"):
        assert fit_image(ImageFile(data, "image/png", "x.png"), 1_000_000, label="Bluesky", channel="sky") is None
    assert "could not be read" in caplog.text and "Traceback" not in caplog.text


def test_a_decompression_bomb_is_not_decoded(caplog):
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")  # 100 megapixels in a few kilobytes
    with caplog.at_level(logging.WARNING, logger="autopublish"):
        assert fit_image(ImageFile(buffer.getvalue(), "image/png", "b.png"), 1_000, label="T", channel="c") is None
    assert "could not be read" in caplog.text
