"""On-demand download of upstream benchmark files into the user's cache.

Files land in ``$CMRM_CACHE/benchmarks/<name>/`` (default ``~/.cache/cmrm/benchmarks/<name>/``) under
the same relative paths a local ``root`` would have, so one reader serves both. A file already in
the cache is never fetched again; a file is written to a temporary name and renamed, so a present
file is complete. Images that upstream ships separately (COCO, the MM-SafetyBench zip) are never
downloaded. The first use of a downloaded benchmark in a process logs its licence at WARNING.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError

log = logging.getLogger(__name__)

TIMEOUT_S = 60.0
_announced: set[str] = set()


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: where it goes under the root, and where to get it (tried in order)."""

    local: str
    """Path relative to the benchmark root, as in the upstream layout."""
    hf: tuple[str, str] | None = None
    """``(repo_id, filename)`` in a HuggingFace *dataset* repository, tried first."""
    urls: tuple[str, ...] = ()
    """Raw file URLs (e.g. ``raw.githubusercontent.com``), tried after ``hf``."""

    def sources(self) -> list[str]:
        hf = [f"hf://datasets/{self.hf[0]}/{self.hf[1]}"] if self.hf else []
        return hf + list(self.urls)


@dataclass(frozen=True)
class Remote:
    """What to download for a benchmark when no ``root`` is given."""

    files: tuple[RemoteFile, ...]
    more: Callable[[Path, Mapping[str, Any]], Sequence[RemoteFile]] | None = None
    """``more(root, options)``: files known only once ``files`` are present (e.g. the images a
    CSV names), possibly depending on the load options."""


def cache_dir() -> Path:
    """The folder benchmark downloads are cached in (``$CMRM_CACHE/benchmarks`` if set)."""
    env = os.environ.get("CMRM_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "cmrm"
    return base / "benchmarks"


def announce(name: str, licence: str, source: str) -> None:
    """Log the licence of a downloaded benchmark, once per process."""
    if name not in _announced:
        _announced.add(name)
        log.warning("%s: licence %s (source: %s). Check it fits your use.", name, licence, source)


def ensure_local(name: str, remote: Remote, layout: str, options: Mapping[str, Any]) -> Path:
    """Download the benchmark's files that are not cached yet; return the cache root."""
    root = cache_dir() / name.replace(":", "_")
    _fetch_all(remote.files, root, name, layout)
    if remote.more is not None:
        _fetch_all(remote.more(root, options), root, name, layout)
    return root


def _fetch_all(files: Sequence[RemoteFile], root: Path, name: str, layout: str) -> None:
    missing = [f for f in files if not (root / f.local).is_file()]
    if missing:
        log.info("%s: downloading %d file(s) into %s", name, len(missing), root)
    for remote_file in missing:
        _fetch(remote_file, root / remote_file.local, name, layout)


def _fetch(remote_file: RemoteFile, dest: Path, name: str, layout: str) -> None:
    attempts: list[tuple[str, Callable[[], None]]] = []
    if remote_file.hf is not None:
        repo_id, filename = remote_file.hf
        attempts.append((remote_file.sources()[0], partial(_download_hf, repo_id, filename, dest)))
    attempts += [(url, partial(_download_url, url, dest)) for url in remote_file.urls]
    failures: list[str] = []
    for source, attempt in attempts:
        try:
            attempt()
            return
        except _network_errors() as err:
            failures.append(f"{source} ({type(err).__name__}: {err})")
    tried = "; ".join(failures) or "no source"
    raise DataError(
        f"could not download {name} file {remote_file.local!r}: tried {tried}. "
        f"You may be offline or the upstream file moved. Fix: get the files yourself and pass "
        f"--root DIR (root=DIR) with the upstream layout ({layout}); see docs/benchmarks.md."
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass
    return tuple(errors)


def _download_url(url: str, dest: Path) -> None:
    if not url.startswith("https://"):
        raise ValueError(f"refusing to download from a non-https URL {url!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download_hf(repo_id: str, filename: str, dest: Path) -> None:
    from huggingface_hub import hf_hub_download

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        path = hf_hub_download(repo_id, filename, repo_type="dataset", local_dir=tmp)
        os.replace(path, dest)
