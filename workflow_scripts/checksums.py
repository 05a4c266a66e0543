"""Checksums of exported models: recorded by the export step, checked before every use and when the workflow
is planned, so that a corrupted export is exported again instead of used. No torch here: the Snakefile
imports this at parse time."""

import hashlib
import json
import os
from pathlib import Path


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: str | os.PathLike) -> Path:
    """The JSON beside an export: its status, verification and checksum."""
    return Path(path).with_suffix(".json")


def corruption(path: str | os.PathLike, quick: bool = False) -> str | None:
    """Why the export at `path` is not the file its sidecar describes, or None when it is (or when it is
    not a finished export at all, which the workflow redoes anyway).

    quick=True trusts a file of the recorded size that was not written after its sidecar (Snakemake gives
    both outputs the same time when the job ends), as Snakemake trusts modification times, and hashes only
    a file that was rewritten since; the check before each use always hashes."""
    path = Path(path)
    try:
        info = json.loads(sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if info.get("status") != "ok" or "sha256" not in info or not path.exists():
        return None
    if quick and unchanged_since_export(path, info):
        return None
    actual = sha256_of(path)
    if actual != info["sha256"]:
        return (f"{path} is corrupted or was changed after export (sha256 {actual[:12]} != "
                f"{info['sha256'][:12]} recorded in {sidecar(path).name})")
    return None


def unchanged_since_export(path: Path, info: dict) -> bool:
    """Whether the file has the size its sidecar recorded and is not newer than the sidecar."""
    stat = os.stat(path)
    return stat.st_size == info.get("size") and stat.st_mtime_ns <= os.stat(sidecar(path)).st_mtime_ns


def mark_outdated(path: str | os.PathLike) -> None:
    """Give the file a modification time older than any input: Snakemake then runs the job that makes it
    again, and after it every job that uses it. Used by a job that finds an export corrupted before use;
    planning never writes (see corrupt_exports)."""
    os.utime(path, ns=(0, 0))


def corrupt_exports(paths) -> dict[str, str]:
    """Each corrupted export among `paths` with the reason (read only: planning writes nothing)."""
    return {str(path): reason for path in paths if (reason := corruption(path, quick=True))}
