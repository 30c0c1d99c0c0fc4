"""The fixed choices and value checks that settings (modules/options.py) share with the feature modules.

They live here, apart from their features, so that reading the settings' declarations loads no feature
(no torch): each feature imports its names from this module, and options.py does too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

FACE_RESTORERS = ("CodeFormer", "GFPGAN")  # modules/face_restoration.py
PREVIEW_METHODS = ("Approx cheap", "Approx NN", "TAESD", "Full")  # modules/jobs/previews.py
INTERROGATE_CATEGORIES = ("mediums", "artists", "movements", "flavors")  # modules/interrogate.py
# With hires fix, the passes a refiner takes part in (A1111's setting hires_fix_refiner_pass).
FIRST_PASS, SECOND_PASS, BOTH_PASSES = HIRES_REFINER_PASSES = ("first pass", "second pass", "both passes")
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}  # file extension → PIL's format
SAVE_FORMATS = tuple(IMAGE_FORMATS)  # modules/images.py


def check_index_url(url: str) -> None:
    """Refuse (ValueError) an extension index address that is not http(s): no file://, no other schemes."""
    if urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
        raise ValueError(f"The extension index URL must start with http:// or https://, got {url!r}")
