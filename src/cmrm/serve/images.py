"""Images named by ``image_url`` parts: ``data:`` URLs always, local paths and http(s) URLs only
when the operator allows them (:class:`~cmrm.serve.config.ImagePolicy`)."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from PIL import Image, UnidentifiedImageError

from .config import ImagePolicy
from .errors import APIError, bad_request

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)"
    r"(?P<b64>;base64)?,(?P<payload>.*)$",
    re.DOTALL,
)
PARAM = "messages.content.image_url"


def decode_image(data: bytes, source: str, policy: ImagePolicy) -> Image.Image:
    """Decode bytes by content into RGB.

    Raises:
        APIError: 400 when the bytes are not an image or the image is too large.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > policy.max_pixels:
                    raise bad_request(
                        f"{source} is {img.width}x{img.height} pixels, more than this server's "
                        f"limit of {policy.max_pixels}; resize it",
                        param=PARAM,
                    )
                img.load()
                return img.convert("RGB")
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as err:
        raise bad_request(
            f"{source} is not an image cmrm can decode ({type(err).__name__}: {err}); send a "
            "PNG, JPEG, WebP or GIF",
            param=PARAM,
            code="invalid_image",
        ) from err


def _from_data_url(url: str, policy: ImagePolicy) -> Image.Image:
    match = _DATA_URL.match(url)
    if match is None or not match.group("b64"):
        raise bad_request(
            "a data: image URL must look like data:image/png;base64,<base64 data>; got "
            f"{url[:40]!r}...",
            param=PARAM,
            code="invalid_image_url",
        )
    payload = re.sub(r"\s+", "", match.group("payload"))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise bad_request(
            f"the data: image URL does not hold valid base64 ({err}); encode the image bytes "
            "with standard base64",
            param=PARAM,
            code="invalid_base64",
        ) from err
    return decode_image(data, "the data: image", policy)


def _from_path(url: str, policy: ImagePolicy) -> Image.Image:
    if policy.local_root is None:
        raise bad_request(
            "this server does not read local image paths (the operator can allow a folder with "
            "--allow-local-images DIR); send the image as a data: URL",
            param=PARAM,
            code="image_source_not_allowed",
        )
    raw = unquote(urlparse(url).path) if url.startswith("file://") else url
    root = policy.local_root.resolve()
    path = Path(raw).resolve()
    if not path.is_relative_to(root):
        raise bad_request(
            f"image path {raw!r} is outside the folder this server reads images from",
            param=PARAM,
            code="image_source_not_allowed",
        )
    if not path.is_file():
        raise bad_request(f"image path {raw!r} does not exist on the server", param=PARAM)
    return decode_image(path.read_bytes(), f"image {raw!r}", policy)


async def _from_http(url: str, policy: ImagePolicy, max_bytes: int) -> Image.Image:
    if not policy.remote:
        raise bad_request(
            "this server does not fetch http(s) image URLs (the operator can allow it with "
            "--allow-remote-images); send the image as a data: URL",
            param=PARAM,
            code="image_source_not_allowed",
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=policy.fetch_timeout_s, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise bad_request(f"fetching {url} gave HTTP {response.status_code}", param=PARAM)
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise bad_request(f"{url} is larger than {max_bytes} bytes", param=PARAM)
                chunks.append(chunk)
    except httpx.HTTPError as err:
        raise bad_request(f"cannot fetch {url}: {err}", param=PARAM) from err
    return decode_image(b"".join(chunks), url, policy)


async def load_request_image(url: str, policy: ImagePolicy, max_bytes: int) -> Image.Image:
    """The image an ``image_url`` names.

    Raises:
        APIError: 400 for an undecodable or disallowed source.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _from_data_url(url, policy)
    if scheme in ("http", "https"):
        return await _from_http(url, policy, max_bytes)
    if scheme == "file" or url.startswith("/"):
        return _from_path(url, policy)
    raise bad_request(
        f"unsupported image URL {url[:60]!r}; use a data: URL (or a path / http(s) URL where "
        "the operator allows them)",
        param=PARAM,
        code="invalid_image_url",
    )


__all__ = ["APIError", "decode_image", "load_request_image"]
