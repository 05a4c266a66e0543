"""Step 2: the model and tokenizer, saved once to a local folder that every later step loads from.

`weights: pretrained` downloads them from the hub; `random` builds the same architecture with random
weights (valid for latency, meaningless for accuracy) and, when the hub's tokenizer is out of reach,
trains a WordPiece tokenizer on the dataset text; `auto` tries pretrained and falls back to random.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
import tempfile
from pathlib import Path

from workflow_scripts.dataset import read_rows
from workflow_scripts.hub import go_offline_if_unreachable
from workflow_scripts.model_config import shipped_config, shipped_ids
from workflow_scripts.progress import note
from workflow_scripts.results import write_json
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("model")
INFO_FILE = "inferbench_model.json"
SHIPPED_SOURCE = "the copy of its config.json shipped with inferbench (hub unreachable)"
RANDOM_SEED = 0


def architecture_config(model_id: str, overrides: dict, num_labels: int, trust_remote_code: bool):
    """(config, where it came from): the hub or its cache, else the copy inferbench ships for common ids
    (model_config.py); an id with neither is refused (never another model's geometry)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_id, num_labels=num_labels, trust_remote_code=trust_remote_code)
        source = "hub"
    except ValueError as error:
        refuse_remote_code(model_id, error)
    except OSError as error:
        shipped = shipped_config(model_id)
        if shipped is None:
            raise SystemExit(f"model.id {model_id!r}: its config is not reachable ({error}) and inferbench ships "
                             f"none for it (it ships: {', '.join(shipped_ids())})") from error
        fields = {key: value for key, value in shipped.items() if key != "model_type"}
        config = AutoConfig.for_model(shipped["model_type"], **fields, num_labels=num_labels)
        source = SHIPPED_SOURCE
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise SystemExit(f"model.config_overrides.{key}: {type(config).__name__} has no such field")
        setattr(config, key, value)
    return config, source


def refuse_remote_code(model_id: str, error: ValueError):
    """transformers refuses a repository's own code with a ValueError that names its own argument; name the
    config key instead. Any other ValueError is raised as it is."""
    if "trust_remote_code" not in str(error):
        raise error
    raise SystemExit(f"model.id {model_id!r} needs Python code from its repository to load; inferbench runs no "
                     "such code unless the config sets model.trust_remote_code: true (read that code first)") from error


def train_wordpiece_tokenizer(sentences: list[str], vocab_size: int, out_dir: Path):
    """A lowercase BERT WordPiece tokenizer of vocab_size trained on the sentences, saved to out_dir and loaded
    back."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(sentences, vocab_size=vocab_size, min_frequency=1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save_model(tmp)
        # BertTokenizerFast(vocab_file=...) silently ignores the file in transformers 5; this form reads it
        tokenizer = BertTokenizer(vocab=str(Path(tmp) / "vocab.txt"))
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def prepare(settings: dict, dataset_rows: str, out_dir: str) -> dict:
    """Save the configured model and tokenizer to out_dir with inferbench_model.json (where the weights came from,
    geometry, warnings): hub weights, or the architecture with random weights and, offline, a WordPiece
    tokenizer trained on the dataset rows; returns the info. Raises SystemExit with advice when the settings
    cannot be met (e.g. pretrained weights offline)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hub_ok = go_offline_if_unreachable()
    model_id, weights = settings["id"], settings["weights"]
    overrides = settings.get("config_overrides") or {}
    # off unless the config says so: with it on, loading the model runs Python code from its repository
    trust = settings.get("trust_remote_code", False) is True
    warnings: list[str] = []
    if trust:
        warnings.append(f"model.trust_remote_code is on: Python code from the model repository {model_id} was "
                        "allowed to run on this machine while loading it.")
        log.warning(warnings[-1])
    loaded = None
    if weights in ("pretrained", "auto"):
        if overrides and weights == "pretrained":
            raise SystemExit("model.config_overrides changes the architecture: it needs model.weights: random")
        if not overrides:
            loaded = pretrained_model(settings, trust, hub_ok, warnings)
    if loaded is None:
        model, tokenizer, config_source, tokenizer_source = random_model(settings, trust, dataset_rows, out,
                                                                         warnings)
        origin = "random"
    else:
        (model, tokenizer), origin, config_source, tokenizer_source = loaded, "pretrained", "hub", "hub"
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config = model.config
    info = {
        "model_id": model_id,
        "weights": origin,
        "model_type": config.model_type,
        "config_source": config_source,
        "tokenizer_source": tokenizer_source,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_hidden_layers": config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers,
        "hidden_size": getattr(config, "hidden_size", getattr(config, "dim", None)),
        "config_overrides": overrides,
        "warnings": warnings,
    }
    write_json(out / INFO_FILE, info)
    log.info("model %s (%s weights, %d parameters) saved to %s", model_id, origin, info["num_parameters"], out)
    return info


def pretrained_model(settings: dict, trust: bool, hub_ok: bool, warnings: list[str]):
    """(model, tokenizer) of settings["id"] from the hub (or its cache), or None when they cannot be loaded and
    model.weights is auto (random weights follow). Appends to `warnings` when the checkpoint has no trained
    classification head. Raises SystemExit with advice when model.weights is pretrained and loading fails, or
    when the model needs its own code and trust_remote_code is off."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_id = settings["id"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust)
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            model_id, num_labels=settings["num_labels"], trust_remote_code=trust, output_loading_info=True)
    except ValueError as error:
        refuse_remote_code(model_id, error)
    except OSError as error:
        if settings["weights"] == "pretrained":
            raise SystemExit(
                f"model.weights is 'pretrained' but {model_id} could not be loaded "
                f"(hub reachable: {hub_ok}): {error}\nRun where the hub is reachable, pre-fill the "
                "cache (HF_HOME), or set model.weights: random (latency only) or auto.") from error
        log.warning("pretrained %s unavailable (%s); building random weights", model_id, error)
        why = (str(error).splitlines()[0] if hub_ok else
               "the Hugging Face hub is not reachable and the local cache could not give it")
        note("model", f"{model_id}: {why}; the same architecture with random weights instead (latencies valid, "
                      "accuracy meaningless)")
        return None
    if not hub_ok:  # said on the console: the run's planning could only say the hub is out of reach
        note("model", f"{model_id} from the local cache (the Hugging Face hub is not reachable)")
    if loading["missing_keys"]:
        warnings.append(f"{model_id} has no trained classification head (newly initialised: "
                        f"{', '.join(sorted(loading['missing_keys'])[:4])}): accuracy is near chance "
                        "unless a checkpoint fine-tuned on the task is configured.")
    return model, tokenizer


def random_model(settings: dict, trust: bool, dataset_rows: str, out: Path, warnings: list[str]):
    """(model, tokenizer, config_source, tokenizer_source): the architecture of settings["id"] with
    model.config_overrides and seeded random weights (RANDOM_SEED), with the hub's tokenizer or, when that is
    unreachable or the architecture was changed, a WordPiece tokenizer trained on the dataset rows (saved in
    `out`). Appends to `warnings` what the report must say. Raises SystemExit when the tokenizer has more
    tokens than the model's vocab_size."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_id, overrides = settings["id"], settings.get("config_overrides") or {}
    config, config_source = architecture_config(model_id, overrides, settings["num_labels"], trust)
    if config_source == SHIPPED_SOURCE:
        warnings.append(f"Model architecture of {model_id} from {config_source}.")
    torch.manual_seed(RANDOM_SEED)
    model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust)
    warnings.append("Random weights: latencies are valid, accuracy is meaningless.")
    try:
        if overrides:
            raise OSError("the architecture was changed, so the hub tokenizer's vocabulary may not fit")
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust)
        tokenizer_source = "hub"
    except OSError:
        sentences = [row["sentence"] for row in read_rows(dataset_rows)]
        tokenizer = train_wordpiece_tokenizer(sentences, min(config.vocab_size, 30000), out)
        tokenizer_source = "WordPiece trained on the dataset text"
        warnings.append("Tokenizer trained locally on the dataset text (the hub's was unreachable).")
    if len(tokenizer) > config.vocab_size:
        raise SystemExit(f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                         f"{config.vocab_size}: raise model.config_overrides.vocab_size")
    return model, tokenizer, config_source, tokenizer_source


def load_info(model_dir: str | Path) -> dict:
    """The model step's inferbench_model.json (model id, weights origin, geometry, warnings)."""
    from workflow_scripts.results import read_json

    return read_json(Path(model_dir) / INFO_FILE)


def main(argv=None) -> None:
    """The command line: save the model (weights or random init) and its tokenizer into a folder (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", help="over model.id")
    parser.add_argument("--weights", choices=["auto", "pretrained", "random"], help="over model.weights")
    parser.add_argument("--num-labels", type=int, help="over model.num_labels")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=INT",
                        help="architecture override over model.config_overrides, e.g. num_hidden_layers=2")
    add_config_arguments(parser, device=False)
    parser.add_argument("--dataset-rows", required=True)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    given = {"id": args.id, "weights": args.weights, "num_labels": args.num_labels}
    values = [f"{key}={value}" for key, value in given.items() if value is not None]
    experiment = experiment_from_args(parser, args, {"model": values, "model.config_overrides": args.override})
    setup_logging()
    prepare(experiment["model"], args.dataset_rows, args.out_dir)


def run_job(smk) -> None:
    """The job of rules/model.smk, called by `step_io.run_step`."""
    prepare(smk.params.settings, smk.input.rows, smk.output.model_dir)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
