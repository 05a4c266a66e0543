"""The one result schema every step writes, and atomic writes so a killed job never leaves half a file."""

import json
import os
import tempfile
from functools import cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA_VERSION = 1
# The wildcards that name one cell: every table has one row per cell under these keys
CELL_KEYS = ["engine", "precision", "batch_size", "seq_len", "padding"]
# Statuses of cells that carry timings (a mismatch is timed, and flagged as untrustworthy)
TIMED_STATUSES = ("ok", "mismatch")
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def _schema(name: str) -> dict:
    return yaml.safe_load((SCHEMA_DIR / name).read_text())


def validate_cell_result(result: dict) -> None:
    """Raise jsonschema.ValidationError when a cell result does not follow the schema."""
    jsonschema.validate(result, _schema("cell_result.schema.yaml"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    The file gets the mode a plain open() would give it (0666 less the umask): mkstemp makes it 0600, which
    would keep colleagues on a shared file system from reading results and reports.
    On any failure (disk full, file size limit, a kill) the temporary file is removed and the target is
    left as it was: absent, or the previous complete file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _discard(tmp)
        # name the file and the cause: the bare errno text does not say what was being written
        raise OSError(error.errno, f"could not write {path} ({len(data):,} bytes): {error.strerror}; "
                                   "it was left unchanged") from error
    except BaseException:
        _discard(tmp)
        raise


def _current_umask() -> int:
    # the umask can only be read by setting it; set it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """atomic_write_bytes of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write a dict as indented, key-sorted JSON atomically (numpy scalars and paths as plain values)."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, table) -> None:
    """Write a pandas DataFrame as CSV (header, no index) atomically."""
    atomic_write_text(path, table.to_csv(index=False))


def read_json(path: str | os.PathLike) -> dict:
    """The JSON file's content."""
    return json.loads(Path(path).read_text())


def write_cell_result(path: str | os.PathLike, result: dict) -> None:
    """Validate a cell result against schemas/cell_result.schema.yaml, then write it atomically
    (jsonschema.ValidationError before any write)."""
    validate_cell_result(json.loads(json.dumps(result, default=_json_default)))
    write_json(path, result)


def _json_default(value):
    # numpy scalars and paths end up in results; store them as plain JSON values
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result file")
