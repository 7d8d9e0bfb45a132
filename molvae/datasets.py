"""Named datasets: download on first use, verify checksums, cache (``molvae data get``).

    >>> named_dataset("moses-train")      # a Path in the cache, fetched with pip the first time
    >>> download_dataset("zinc250k", "data/")

``moses-*`` come from the ``molsets`` wheel on PyPI (downloaded with pip, never installed);
``zinc250k`` is the CSV of the chemical VAE literature. :mod:`molvae.data` reads them by name.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from molvae.errors import DataError

__all__ = ["named_dataset", "download_dataset", "dataset_cache", "DATASETS", "MOSES_FILES", "MOSES_PACKAGE", "ZINC250K_URL"]

MOSES_PACKAGE = "molsets==0.3.1"
"""The PyPI package whose wheel carries the MOSES splits (MIT licence)."""
MOSES_FILES = {
    # file in the wheel -> (local name, SHA-256, size in bytes)
    "moses/dataset/data/train.csv.gz": (
        "moses_train.csv.gz", "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", 10238967),
    "moses/dataset/data/test.csv.gz": (
        "moses_test.csv.gz", "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2", 1367572),
    "moses/dataset/data/test_scaffolds.csv.gz": (
        "moses_test_scaffolds.csv.gz", "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde", 1274114),
}
ZINC250K_URL = (
    "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/"
    "37b9f96470d4471c0593cffefa448e0a8a184ef6/models/zinc_properties/250k_rndm_zinc_drugs_clean_3.csv"
)
"""The ZINC-250k CSV of the chemical VAE literature (Gomez-Bombarelli et al. 2018). Env override: MOLVAE_ZINC250K_URL."""
ZINC250K_FILE = "zinc250k.csv"
ZINC250K_ROWS = 249_455
ZINC250K_SHA256: str | None = "35e3f1a52b1badc0697e373d73a18ad773f415936ff992f4c6baa2e067b3e6ae"
"""SHA-256 of the file's bytes (22,606,589 bytes), as recorded independently by several projects that
pin this file; the download is also checked for its ``smiles`` column and row count."""

DATASETS = {
    "moses-train": ("moses", "moses_train.csv.gz"),
    "moses-test": ("moses", "moses_test.csv.gz"),
    "moses-test-scaffolds": ("moses", "moses_test_scaffolds.csv.gz"),
    "zinc250k": ("zinc250k", ZINC250K_FILE),
}
"""Named dataset -> (download group, file name in the cache directory)."""


def dataset_cache(cache_dir: str | Path | None = None) -> Path:
    """Where named datasets are kept: ``cache_dir``, else ``$MOLVAE_CACHE`` or ``~/.cache/molvae``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MOLVAE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "molvae"


_cache_dir = dataset_cache  # the old private name (molvae.data re-exports it)


def named_dataset(name: str, cache_dir: str | Path | None = None, download: bool = True) -> Path:
    """Path of a named dataset file in the cache (``$MOLVAE_CACHE`` or ``~/.cache/molvae``), fetched if missing.

    Names: ``moses-train``, ``moses-test``, ``moses-test-scaffolds``, ``zinc250k``.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    group, fname = DATASETS[name]
    path = dataset_cache(cache_dir) / fname
    if path.exists():
        return path
    if not download:
        raise DataError(f"dataset {name!r} is not in {path.parent}; fetch it with `molvae data get {group} {path.parent}`")
    download_dataset(group, path.parent)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_from(stream, dest: Path, progress: bool = False, total: int | None = None, desc: str = "") -> None:
    """Copy a binary stream to ``dest`` through a temporary file in the same folder, then rename."""
    from molvae.progress import progress_bar

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, progress_bar(total=total, unit="B", unit_scale=True, desc=desc,
                                               disable=not progress, leave=False) as bar:
            for block in iter(lambda: stream.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a dataset file is ordinary data
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_file(path: Path, sha256: str | None, size: int | None = None) -> None:
    """Raise DataError (and delete the file) when it does not match its recorded checksum."""
    if sha256 is None:
        return
    got = _sha256(path)
    if got != sha256:
        path.unlink(missing_ok=True)
        raise DataError(f"{path}: checksum mismatch (SHA-256 {got[:16]}..., expected {sha256[:16]}...); the file was removed")


def _pip_download(package: str, dest: Path, pip_args: Sequence[str]) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", package, "-d", str(dest), *pip_args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise DataError(f"`{' '.join(shlex.quote(c) for c in cmd[2:])}` failed: {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise DataError(f"pip download of {package} produced no wheel in {dest}")
    return wheels[0]


def _get_moses(dest: Path, *, wheel: str | Path | None, pip_args: Sequence[str], checksums: dict | None,
               force: bool, progress: bool) -> list[Path]:
    files = MOSES_FILES if checksums is None else {k: (v[0], checksums.get(v[0], v[1]), v[2]) for k, v in MOSES_FILES.items()}
    targets = [dest / local for local, _, _ in files.values()]
    if not force and all(_cached_ok(p, sha) for p, (_, sha, _) in zip(targets, files.values())):
        return targets
    wheel = wheel or os.environ.get("MOLVAE_MOSES_WHEEL") or None
    pip_args = list(pip_args) + shlex.split(os.environ.get("MOLVAE_PIP_ARGS", ""))
    with tempfile.TemporaryDirectory(prefix="molvae-moses-") as tmp:
        if wheel is None:
            if progress:
                print(f"downloading {MOSES_PACKAGE} with pip ...", file=sys.stderr)
            wheel_path = _pip_download(MOSES_PACKAGE, Path(tmp), pip_args)
        elif str(wheel).startswith(("http://", "https://", "file://")):
            wheel_path = Path(tmp) / "molsets.whl"
            _fetch_url(str(wheel), wheel_path, progress=progress)
        else:
            wheel_path = Path(wheel)
            if not wheel_path.exists():
                raise DataError(f"{wheel_path}: wheel not found")
        try:
            with zipfile.ZipFile(wheel_path) as zf:
                names = set(zf.namelist())
                for member, (local, sha, _) in files.items():
                    if member not in names:
                        raise DataError(f"{wheel_path}: {member} not found in the wheel")
                    with zf.open(member) as src:
                        _atomic_write_from(src, dest / local)
                    _check_file(dest / local, sha)
        except zipfile.BadZipFile:
            raise DataError(f"{wheel_path}: not a wheel (zip) file") from None
    return targets


def _cached_ok(path: Path, sha: str | None) -> bool:
    return path.exists() and (sha is None or _sha256(path) == sha)


def _fetch_url(url: str, dest: Path, progress: bool = False, timeout: float = 60.0,
               hint: str = "check the network") -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            _atomic_write_from(resp, dest, progress=progress, total=int(total) if total else None, desc=dest.name)
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"could not download {url}: {reason} ({hint})") from None


def _check_zinc(path: Path, expected_rows: int | None) -> None:
    """Check the ZINC-250k CSV's columns and row count; remove it and raise DataError if wrong."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = sum(1 for r in reader if r)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        header, rows = None, f"unreadable ({exc})"
    problem = None
    if not header or "smiles" not in [h.strip() for h in header]:
        problem = f"no 'smiles' column (header: {header})"
    elif expected_rows is not None and rows != expected_rows:
        problem = f"{rows} rows, expected {expected_rows}"
    if problem:
        path.unlink(missing_ok=True)
        raise DataError(f"{path}: not the ZINC-250k CSV: {problem}; the file was removed")


def _get_zinc(dest: Path, *, url: str | None, sha256: str | None, expected_rows: int | None, force: bool,
              progress: bool) -> list[Path]:
    target = dest / ZINC250K_FILE
    if not force and _cached_ok(target, sha256):
        return [target]
    url = url or os.environ.get("MOLVAE_ZINC250K_URL") or ZINC250K_URL
    if progress:
        print(f"downloading {url} ...", file=sys.stderr)
    _fetch_url(url, target, progress=progress, hint="check the network, or fetch from a mirror with --url / MOLVAE_ZINC250K_URL")
    _check_file(target, sha256)
    _check_zinc(target, expected_rows)
    return [target]


def download_dataset(
    name: str,
    dest_dir: str | Path,
    *,
    force: bool = False,
    progress: bool = False,
    url: str | None = None,
    wheel: str | Path | None = None,
    pip_args: Sequence[str] = (),
    checksums: dict[str, str] | None = None,
    expected_rows: int | None = None,
) -> list[Path]:
    """Download a public dataset into ``dest_dir``, check it, and return the file paths.

    ``moses``: ``moses_train.csv.gz``, ``moses_test.csv.gz``, ``moses_test_scaffolds.csv.gz``
    taken from the ``molsets`` 0.3.1 wheel, fetched with ``pip download`` (extra ``pip_args`` or
    ``$MOLVAE_PIP_ARGS`` pick an index or mirror; ``wheel`` or ``$MOLVAE_MOSES_WHEEL`` use a local
    wheel or URL instead) and checked against recorded SHA-256 sums (``checksums`` overrides
    them, by local file name). ``zinc250k``: ``zinc250k.csv`` from :data:`ZINC250K_URL` (or
    ``url`` / ``$MOLVAE_ZINC250K_URL``), checked by SHA-256, columns and row count
    (``expected_rows``, default :data:`ZINC250K_ROWS`).
    Files are written atomically; files already present and intact are not fetched again
    unless ``force``; a file that fails its check is removed.

    :raises DataError: unknown name, network or pip failure, checksum mismatch.
    """
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest}: cannot create directory: {exc.strerror or exc}") from None
    if name == "moses":
        return _get_moses(dest, wheel=wheel, pip_args=pip_args, checksums=checksums, force=force, progress=progress)
    if name == "zinc250k":
        sha = (checksums or {}).get(ZINC250K_FILE, ZINC250K_SHA256)
        rows = ZINC250K_ROWS if expected_rows is None else expected_rows
        return _get_zinc(dest, url=url, sha256=sha, expected_rows=rows, force=force, progress=progress)
    raise DataError(f"unknown dataset {name!r}; expected moses or zinc250k")
