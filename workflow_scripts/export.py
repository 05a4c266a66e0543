"""Step 4: export the model to TorchScript (trace, freeze, optimize_for_inference) and verify it against
eager on the same inputs before anything uses it. A checksum beside the file guards every later load: a
corrupted file is refused here and marked outdated (here and by rules/export.smk when the workflow is
planned), so that snakemake exports it again."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import contextlib
import hashlib
import io
import logging
import warnings
from pathlib import Path

import torch

from workflow_scripts.checksums import corruption, mark_outdated, sidecar
from workflow_scripts.correctness import compare
from workflow_scripts.engines.base import PRECISION_DTYPES, EngineUnavailable, load_hf_model
from workflow_scripts.environment import resolve_device
from workflow_scripts.results import atomic_write_bytes, read_json, write_json
from workflow_scripts.step_io import (add_config_arguments, add_tolerance_arguments, experiment_from_args, run_step,
                                     setup_logging, tolerance_from_args)
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch

log = logging.getLogger("export")


class LogitsOnly(torch.nn.Module):
    """(input_ids, attention_mask) -> logits: the plain-tensor signature TorchScript and Triton serve."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        """Logits only (TorchScript traces a tensor, not a ModelOutput)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class _DropMessages(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def tracing_quietly():
    """Silences what transformers says while torch.jit.trace runs and walks the model, each harmless here:
    TracerWarnings from its own mask code (Python booleans of tensors become constants: the export is verified
    on two batch sizes and both paddings before anything uses it), the FutureWarning of its deprecated
    `is_gradient_checkpointing` property and the `loss_type=None` note of its `loss_function` property (the
    tracer reads every attribute; inference computes no loss). Other warnings pass."""
    loss_note = _DropMessages("was set in the config but it is unrecognized")
    modeling_log = logging.getLogger("transformers.modeling_utils")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"transformers\.")
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning,
                                module=r"transformers\.")
        modeling_log.addFilter(loss_note)
        try:
            yield
        finally:
            modeling_log.removeFilter(loss_note)


def verification_batches(tokens: dict, device: str) -> list[dict]:
    """Two batch sizes and both paddings: a trace that baked in a shape or a mask path fails here."""
    rows = tokens["input_ids"].shape[0]
    return [make_batch(tokens, batch_rows(rows, size, 1)[0], padding, device)
            for size in (1, 5) for padding in ("max_length", "dynamic")]


def export_torchscript(model_dir: str, tokens_path: str, device: str, precision: str, tolerance: dict,
                       out_path: str) -> dict:
    """Trace, freeze and verify the model in `precision` on `device` against eager on several batch shapes, then
    write the module and its sidecar (sha256, checks) atomically; returns the sidecar. fp16 on CPU is recorded
    as skipped (an empty module). Raises SystemExit when the trace differs beyond tolerance."""
    device = resolve_device(device)
    if device == "cpu" and precision == "fp16":
        # recorded, not raised: the engines that need this file then skip their cells with the reason
        info = {"format": "torchscript", "precision": precision, "device": device, "status": "skipped",
                "reason": "fp16 matmuls are not supported on CPU"}
        atomic_write_bytes(out_path, b"")
        write_json(sidecar(out_path), info)
        return info
    dtype = PRECISION_DTYPES[precision]
    model = LogitsOnly(load_hf_model(Path(model_dir), device, dtype, attn_implementation="sdpa"))
    tokens = load_tokens(tokens_path)
    batches = verification_batches(tokens, device)
    with torch.inference_mode(False), torch.no_grad():
        # trace a padded multi-row batch so the attention-mask path is part of the graph
        example = next(b for b in batches if b["input_ids"].shape[0] > 1 and b["input_ids"].shape[1] ==
                       tokens["seq_len"])
        with tracing_quietly():
            traced = torch.jit.trace(model, (example["input_ids"], example["attention_mask"]), check_trace=False)
            module = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        checks = []
        for batch in batches:
            expected = model(batch["input_ids"], batch["attention_mask"])
            got = module(batch["input_ids"], batch["attention_mask"])
            checks.append({"shape": list(batch["input_ids"].shape), **compare(got, expected, tolerance)})
    failed = [c for c in checks if not c["within_tolerance"]]
    if failed:
        raise SystemExit(f"TorchScript export differs from eager beyond tolerance {tolerance}: {failed}")
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    data = buffer.getvalue()
    # hashed before writing, so that the file and its sidecar are replaced moments apart
    checksum = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(out_path, data)
    info = {"format": "torchscript", "precision": precision, "device": device, "status": "ok",
            "sha256": checksum, "size": len(data),
            "verification": checks, "torch": torch.__version__}
    write_json(sidecar(out_path), info)
    log.info("exported %s (%s on %s), verified on %d batches", out_path, precision, device, len(checks))
    return info


def load_verified_torchscript(path: str | Path, device: str):
    """Load an exported module after checking it is the file the export step verified.

    A corrupted file is refused and marked outdated, so that the next snakemake run exports it again and
    reruns this cell (planning only names a corrupted export; it writes nothing), also when the corruption
    kept the file's size and time (the check at planning time trusts those)."""
    info = read_json(sidecar(path))
    if info["status"] != "ok":
        raise EngineUnavailable(info["reason"])
    reason = corruption(path)
    if reason:
        mark_outdated(path)
        raise RuntimeError(f"{reason}: the next snakemake run exports it again")
    return torch.jit.load(str(path), map_location=device).eval()


def main(argv=None) -> None:
    """The command line: export and verify the TorchScript module of one precision (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--precision", choices=list(PRECISION_DTYPES), default="fp32")
    add_tolerance_arguments(parser)
    add_config_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    setup_logging()
    export_torchscript(args.model_dir, args.tokens, experiment["device"], args.precision,
                       tolerance_from_args(args, experiment), args.out)


def run_job(smk) -> None:
    """The job of rules/export.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    export_torchscript(smk.input.model_dir, smk.input.tokens, smk.params.device, smk.wildcards.precision,
                       smk.params.tolerance, smk.output.module)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
