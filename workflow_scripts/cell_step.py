"""What every step that measures one cell shares around its measurements (benchmark, accuracy, pair, the two
profilers): the result skeleton of the one schema, a failure recorded as the result's status, the environment,
the validated atomic write and the job's closing log line. Each step fills in only its measurements."""

import contextlib
import logging
import os
from typing import Callable, Iterator

from workflow_scripts import environment
from workflow_scripts.model import load_info
from workflow_scripts.outcome import classify
from workflow_scripts.results import SCHEMA_VERSION, write_cell_result


@contextlib.contextmanager
def recorded_result(kind: str, cell: dict, model_dir: str, out_path: str | os.PathLike, config_slice: dict,
                    log: logging.Logger, describe: Callable[[dict], str] | None = None,
                    **fields) -> Iterator[dict]:
    """`with recorded_result("latency", cell, ...) as result: result.update(measurements)`.

    kind: the result's `kind` (schemas/cell_result.schema.yaml); cell: the cell with its device resolved;
    config_slice: the settings that can change this result (stored in its environment); fields: the kind's
    own keys with their values before measuring (usually None). Yields the result (status "ok", reason None).
    An exception in the block is not raised but recorded (status failed, oom or skipped, with the reason:
    outcome.classify), so the workflow goes on with the other cells; either way the environment is captured,
    the result validated and written atomically to out_path (jsonschema.ValidationError before any write), and
    one line logged: `<out_path>: <status> <describe(result)>` (default: the reason, if any).
    """
    result = {"schema_version": SCHEMA_VERSION, "kind": kind, "cell": cell, "status": "ok", "reason": None,
              "model": load_info(model_dir), **fields}
    try:
        yield result
    except Exception as error:  # recorded in the result; the workflow goes on with the other cells
        result["status"], result["reason"] = classify(error)
    result["environment"] = environment.capture(cell["device"], config_slice)
    write_cell_result(out_path, result)
    log.info("%s: %s %s", out_path, result["status"], describe(result) if describe else result["reason"] or "")
