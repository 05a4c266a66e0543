"""The correctness yardstick: fp32 eager logits for every dataset row (TF32 off), once per sequence length."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import io
import logging

import torch

from workflow_scripts.engines import create
from workflow_scripts.environment import resolve_device
from workflow_scripts.progress import Progress
from workflow_scripts.results import atomic_write_bytes
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch

log = logging.getLogger("reference")


def run_all_rows(engine, tokens: dict, batch_size: int, padding: str, device: str, name: str | None = None
                 ) -> torch.Tensor:
    """Logits (float32, CPU) of every dataset row, in order. name: what the console's progress lines call this
    pass (a line every PROGRESS_INTERVAL_S while it runs and one at its end, only when it runs that long)."""
    num_rows = tokens["input_ids"].shape[0]
    batch_size = min(batch_size, engine.max_batch_size or batch_size)
    all_rows = batch_rows(num_rows, batch_size)
    progress = Progress(name or "all rows", len(all_rows), "batch")
    outputs = []
    for rows in all_rows:
        batch = make_batch(tokens, rows, padding, engine.input_device or device)
        outputs.append(engine.run(batch["input_ids"], batch["attention_mask"]).float().cpu())
        progress.step(lambda: f"{min(progress.done * batch_size, num_rows)} of {num_rows} rows")
    if progress.shown:
        progress.finish(f"all {num_rows} rows")
    return torch.cat(outputs)[:num_rows]


def compute_reference(model_dir: str, tokens_path: str, device: str, batch_size: int, out_path: str) -> None:
    """fp32 eager logits [rows, num_labels] of every row (TF32 off), batch by batch, written to out_path."""
    device = resolve_device(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    engine = create("eager", model_dir=model_dir, device=device, precision="fp32")
    engine.load()
    tokens = load_tokens(tokens_path)
    logits = run_all_rows(engine, tokens, batch_size, "max_length", device, f"reference seq{tokens['seq_len']}")
    buffer = io.BytesIO()
    torch.save(logits, buffer)
    atomic_write_bytes(out_path, buffer.getvalue())
    log.info("reference logits %s written to %s", tuple(logits.shape), out_path)


def main(argv=None) -> None:
    """The command line: compute the fp32 eager reference logits of every row (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--batch-size", type=int, help="over correctness.batch_size")
    add_config_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    setup_logging()
    compute_reference(args.model_dir, args.tokens, experiment["device"],
                      args.batch_size or experiment["correctness"]["batch_size"], args.out)


def run_job(smk) -> None:
    """The job of rule reference in rules/correctness.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    compute_reference(smk.input.model_dir, smk.input.tokens, smk.params.device, smk.params.batch_size,
                      smk.output.reference)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
