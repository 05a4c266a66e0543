"""Accuracy of one engine x precision over the whole split, and its agreement with the fp32 eager reference.

Run once per engine and precision (not per batch size), at the configured correctness batch size.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging

import torch

from workflow_scripts import environment
from workflow_scripts.cell_step import recorded_result
from workflow_scripts.correctness import compare
from workflow_scripts.engines import create
from workflow_scripts.reference import run_all_rows
from workflow_scripts.step_io import (add_cell_arguments, add_tolerance_arguments, cell_from_args, cell_from_job,
                                     engine_settings, experiment_from_args, job_engine_settings, run_step,
                                     setup_logging, tolerance_from_args)
from workflow_scripts.tokens import load_tokens

log = logging.getLogger("accuracy")


def evaluate(cell: dict, model_dir: str, tokens_path: str, reference_path: str, artifacts: dict,
             engine_settings: dict, tolerance: dict, out_path: str) -> dict:
    """Run the engine over every row of the split at cell["batch_size"] and write its result (kind accuracy:
    accuracy against the labels, correctness against the fp32 eager logits in reference_path) to out_path;
    returns it. Any failure becomes the result's status."""
    cell = {**cell, "device": environment.resolve_device(cell["device"])}
    config_slice = {"cell": cell, "engine_settings": engine_settings, "tolerance": tolerance}
    with recorded_result("accuracy", cell, model_dir, out_path, config_slice, log,
                         describe=lambda result: f"accuracy={result['accuracy']}", accuracy=None,
                         correctness=None) as result:
        tokens = load_tokens(tokens_path)
        engine = create(cell["engine"], model_dir=model_dir, device=cell["device"], precision=cell["precision"],
                        settings=engine_settings, artifacts=artifacts, result_path=out_path)
        try:
            engine.load()
            name = f"accuracy {cell['engine']} {cell['precision']} seq{cell['seq_len']} {cell['padding']}"
            logits = run_all_rows(engine, tokens, cell["batch_size"], cell["padding"], cell["device"], name)
        finally:
            engine.close()
        result["accuracy"] = float((logits.argmax(dim=-1) == tokens["labels"]).float().mean())
        result["correctness"] = compare(logits, torch.load(reference_path, weights_only=True), tolerance)
        if not result["correctness"]["within_tolerance"]:
            result["status"] = "mismatch"
            result["reason"] = (f"logits differ from fp32 eager over the split: max |diff| "
                                f"{result['correctness']['max_abs_diff']:.3g}, agreement "
                                f"{result['correctness']['agreement']:.1%}")
    return result


def main(argv=None) -> None:
    """The command line: one engine x precision over the whole split, with its rule's settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cell_arguments(parser)
    parser.set_defaults(batch_size=None)
    parser.add_argument("--reference", required=True)
    add_tolerance_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    setup_logging()
    cell, artifacts = cell_from_args(parser, args, experiment)
    if cell["batch_size"] is None:  # the rule's: correctness.batch_size
        cell["batch_size"] = experiment["correctness"]["batch_size"]
    evaluate(cell, args.model_dir, args.tokens, args.reference, artifacts, engine_settings(args.engine, experiment),
             tolerance_from_args(args, experiment), args.out)


def run_job(smk) -> None:
    """The job of rule accuracy in rules/correctness.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    cell, artifacts = cell_from_job(smk, batch_size=smk.params.batch_size)
    evaluate(cell, smk.input.model_dir, smk.input.tokens, smk.input.reference, artifacts,
             job_engine_settings(smk), smk.params.tolerance, smk.output.result)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
