"""Step 1: the evaluation sentences and labels (GLUE SST-2 from the hub, or the sample shipped here)."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import csv
import json
import logging
from pathlib import Path

from workflow_scripts.hub import go_offline_if_unreachable
from workflow_scripts.progress import note
from workflow_scripts.results import atomic_write_text, write_json
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging
from workflow_scripts.wording import count

log = logging.getLogger("dataset")
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "sst2_sample.tsv"


class HubUnavailable(RuntimeError):
    """The Hugging Face hub (or the `datasets` package) cannot give the dataset here; `source: auto` falls back
    to the bundled sample."""
    pass


def load_from_hub(name: str, config: str, split: str) -> list[dict]:
    """Rows {sentence, label} of the configured dataset from the Hugging Face hub, or offline from the local
    cache (call hub.go_offline_if_unreachable first); HubUnavailable when neither has it."""
    try:
        import datasets  # optional where only the bundled sample is used (e.g. an offline GPU machine)
    except ImportError as error:
        raise HubUnavailable(f"the datasets package is not installed ({error})") from error
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # offline, unknown dataset, network: all end the hub attempt the same way
        raise HubUnavailable(f"{type(error).__name__}: {error}") from error
    return [{"sentence": row["sentence"], "label": int(row["label"])} for row in rows]


def load_sample() -> list[dict]:
    """Rows {sentence, label} of the SST-2-format sample shipped in workflow_scripts/data/."""
    with SAMPLE_PATH.open(newline="") as handle:
        return [{"sentence": row["sentence"], "label": int(row["label"])}
                for row in csv.DictReader(handle, delimiter="\t")]


def prepare(settings: dict, out_rows: str, out_info: str) -> dict:
    """Write the rows (JSON lines) and an info file that says where they came from."""
    source = settings["source"]
    name, config, split = settings["name"], settings["config"], settings["split"]
    origin, hub_error = None, None
    rows: list[dict] = []
    wanted = f"{name}/{config} {split}"
    if source in ("auto", "hub"):
        hub_ok = go_offline_if_unreachable()
        try:
            rows = load_from_hub(name, config, split)
            origin = "hub"
            if not hub_ok:  # said on the console: the run's planning could only say the hub is out of reach
                note("dataset", f"{wanted} from the local cache ({count(len(rows), 'row')}; the Hugging Face hub "
                                "is not reachable)")
        except HubUnavailable as error:
            hub_error = str(error)
            if source == "hub":
                raise SystemExit(
                    f"dataset.source is 'hub' but {name}/{config} split '{split}' could not be loaded: {hub_error}\n"
                    "Run where the Hugging Face hub is reachable, pre-fill the datasets cache (HF_HOME), "
                    "or set dataset.source: auto to allow the bundled SST-2-format sample.") from error
            log.warning("hub unavailable (%s); using the bundled sample", hub_error)
    if origin is None:
        rows, origin = load_sample(), "sample"
    if settings.get("max_samples"):
        rows = rows[: settings["max_samples"]]
    if hub_error:
        why = hub_error if hub_ok else (f"the Hugging Face hub is not reachable and the local cache could not give "
                                        f"it ({hub_error})")
        note("dataset", f"the bundled SST-2-format sample ({count(len(rows), 'sentence')}), not {wanted}: {why}")
    if not rows:
        raise SystemExit("the dataset has no rows (check dataset.split and dataset.max_samples)")
    info = {"origin": origin, "name": name, "config": config, "split": split,
            "rows": len(rows), "hub_error": hub_error,
            "sample_file": SAMPLE_PATH.name if origin == "sample" else None}
    atomic_write_text(out_rows, "".join(json.dumps(row) + "\n" for row in rows))
    write_json(out_info, info)
    log.info("dataset: %d rows from %s", len(rows), origin)
    return info


def read_rows(path: str) -> list[dict]:
    """The rows the dataset step wrote (JSON lines)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def main(argv=None) -> None:
    """The command line: write the dataset's rows (JSON lines) and dataset_info.json (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", help="over dataset.name")
    parser.add_argument("--dataset-config", help="over dataset.config (the dataset's own configuration)")
    parser.add_argument("--split", help="over dataset.split")
    parser.add_argument("--max-samples", type=int, help="over dataset.max_samples")
    parser.add_argument("--source", choices=["auto", "hub", "sample"], help="over dataset.source")
    add_config_arguments(parser, device=False)
    parser.add_argument("--out-rows", required=True)
    parser.add_argument("--out-info", required=True)
    args = parser.parse_args(argv)
    given = {"name": args.name, "config": args.dataset_config, "split": args.split,
             "max_samples": args.max_samples, "source": args.source}
    experiment = experiment_from_args(parser, args, {"dataset": [f"{key}={value}" for key, value in given.items()
                                                                 if value is not None]})
    setup_logging()
    prepare(experiment["dataset"], args.out_rows, args.out_info)


def run_job(smk) -> None:
    """The job of rules/dataset.smk, called by `step_io.run_step`."""
    prepare(smk.params.settings, smk.output.rows, smk.output.info)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
