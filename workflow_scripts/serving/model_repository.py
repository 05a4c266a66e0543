"""Build a Triton model repository for one (model, precision, backend) from the exported artifacts.

  <out>/<name>/config.pbtxt
  <out>/<name>/1/model.pt                  backend pytorch: the verified TorchScript export
  <out>/<name>/1/model.py + hf_model/      backend python: the Hugging Face model run with torch
Large files are hard-linked from results/ when possible (same file system), copied otherwise.
"""
from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
import os
import shutil
from pathlib import Path

from workflow_scripts.results import atomic_write_text, write_json
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("model_repository")
PYTHON_MODEL = Path(__file__).resolve().parent / "python_backend_model.py"
BACKENDS = ("python", "pytorch")
TRITON_DTYPES = {"fp32": "TYPE_FP32", "fp16": "TYPE_FP16", "bf16": "TYPE_BF16"}


def model_name(backend: str, precision: str) -> str:
    """The served model's name in the repository."""
    return f"inferbench_{backend}_{precision}"


def output_name(backend: str) -> str:
    # the libtorch backend maps outputs by the `<name>__<index>` convention; the Python backend by name
    """The logits output's name: the libtorch backend maps outputs as <name>__<index>, the Python backend by name."""
    return "logits__0" if backend == "pytorch" else "logits"


def config_pbtxt(backend: str, precision: str, seq_len: int, num_labels: int, device: str, settings: dict) -> str:
    """The model's config.pbtxt: backend, INT64 inputs of dims [seq_len], FP32 logits [num_labels], max_batch_size,
    dynamic batching, instance group on the device."""
    batching = settings["dynamic_batching"]
    preferred = ", ".join(str(b) for b in batching["preferred_batch_sizes"] if b <= settings["max_batch_size"])
    if backend == "pytorch":
        header = 'platform: "pytorch_libtorch"'
        kind = "KIND_GPU" if device == "cuda" else "KIND_CPU"
        out_type = TRITON_DTYPES[precision]
        parameters = ""
    else:
        header = 'backend: "python"'
        # model.py puts the model on the GPU itself (parameter `device`) and takes host tensors from the backend
        # either way; KIND_GPU (python_instance_kind: gpu) lets Triton place the instance on a GPU itself.
        # A machine without a GPU has only KIND_CPU.
        gpu = device == "cuda" and settings.get("python_instance_kind", "cpu") == "gpu"
        kind = "KIND_GPU" if gpu else "KIND_CPU"
        out_type = "TYPE_FP32"  # model.py returns float32 logits whatever the compute precision
        parameters = (f'parameters [\n  {{ key: "precision" value: {{ string_value: "{precision}" }} }},\n'
                      f'  {{ key: "device" value: {{ string_value: "{device}" }} }},\n'
                      f'  {{ key: "compile_mode" value: {{ string_value: "{settings["python_compile_mode"]}" }} }}\n]\n')
    return (
        f'name: "{model_name(backend, precision)}"\n{header}\nmax_batch_size: {settings["max_batch_size"]}\n'
        f'input [\n  {{ name: "input_ids" data_type: TYPE_INT64 dims: [ {seq_len} ] }},\n'
        f'  {{ name: "attention_mask" data_type: TYPE_INT64 dims: [ {seq_len} ] }}\n]\n'
        f'output [\n  {{ name: "{output_name(backend)}" data_type: {out_type} dims: [ {num_labels} ] }}\n]\n'
        f'dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n'
        f'  max_queue_delay_microseconds: {batching["max_queue_delay_us"]}\n}}\n'
        f'instance_group [\n  {{ count: {settings["instance_count"]} kind: {kind} }}\n]\n{parameters}'
    )


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link source to target (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build(backend: str, precision: str, seq_len: int, model_dir: str, torchscript: str | None, device: str,
          settings: dict, out_dir: str) -> Path:
    """Write a Triton model repository for backend and precision (the TorchScript export for pytorch, the Hugging
    Face model for python) with repository.json; fp16 on CPU writes only a skipped repository.json. Returns the
    folder."""
    from workflow_scripts.environment import resolve_device
    from workflow_scripts.model import load_info

    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {BACKENDS}")
    device = resolve_device(device)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    name = model_name(backend, precision)
    if device == "cpu" and precision == "fp16":
        out.mkdir(parents=True)
        write_json(out / "repository.json", {"model_name": name, "status": "skipped",
                                             "reason": "fp16 matmuls are not supported on CPU"})
        return out
    version = out / name / "1"
    version.mkdir(parents=True)
    if backend == "pytorch":
        link_or_copy(Path(torchscript), version / "model.pt")
    else:
        shutil.copy2(PYTHON_MODEL, version / "model.py")
        for file in Path(model_dir).iterdir():
            if file.is_file():
                link_or_copy(file, version / "hf_model" / file.name)
    from transformers import AutoConfig

    num_labels = AutoConfig.from_pretrained(model_dir).num_labels
    atomic_write_text(out / name / "config.pbtxt", config_pbtxt(backend, precision, seq_len, num_labels, device,
                                                                 settings))
    write_json(out / "repository.json", {"model_name": name, "status": "ok", "reason": None,
                                         "backend": backend, "precision": precision,
                                         "seq_len": seq_len, "device": device, "output": output_name(backend),
                                         "model": load_info(model_dir)["model_id"], "settings": settings})
    log.info("Triton model repository %s (%s backend, %s, seq %d) in %s", name, backend, precision, seq_len, out)
    return out


def main(argv=None) -> None:
    """The command line: write one Triton model repository (config.pbtxt and the model) for a backend."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--torchscript", help="exported module (backend pytorch)")
    parser.add_argument("--max-batch-size", type=int, help="over triton.repository.max_batch_size")
    parser.add_argument("--compile-mode", choices=["none", "default", "reduce-overhead"],
                        help="over triton.repository.python_compile_mode")
    add_config_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    given = {"max_batch_size": args.max_batch_size, "python_compile_mode": args.compile_mode}
    experiment = experiment_from_args(parser, args, {"triton.repository": [
        f"{key}={value}" for key, value in given.items() if value is not None]})
    setup_logging()
    build(args.backend, args.precision, args.seq_len, args.model_dir, args.torchscript, experiment["device"],
          experiment["triton"]["repository"], args.out)


def run_job(smk) -> None:
    """The job of rule triton_repository in rules/serving.smk, called by `step_io.run_step`."""
    w = smk.wildcards
    build(w.backend, w.precision, int(w.seq_len), smk.input.model_dir, smk.input.get("torchscript"),
          smk.params.device, smk.params.settings, smk.output.repository)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
