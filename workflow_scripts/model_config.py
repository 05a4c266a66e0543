"""A model's config.json before any job runs, without the network: so that the geometry it implies (layers,
hidden size, the longest sequence its position embeddings allow) can be checked when the workflow is
planned, and so that a model built offline has the real geometry of its id, not a guess.

Where it is looked for, in order: `model.id` as a local folder; the Hugging Face cache; the copies inferbench
ships in `data/model_configs/` for common ids. Imported by the Snakefile at parse time: no torch, no
transformers, no network.
"""

import json
from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "data" / "model_configs"
# Hub organisations that host the canonical copies of the ids shipped under their short names
CANONICAL_ORGS = ("google-bert/", "distilbert/")


class ModelConfigUnavailable(LookupError):
    """Neither the hub nor inferbench's shipped configs give this model id's config.json."""
    pass


def shipped_ids() -> list[str]:
    """The model ids whose config.json inferbench ships (workflow_scripts/data/model_configs), sorted."""
    return sorted(path.stem for path in SHIPPED_DIR.glob("*.json"))


def shipped_config(model_id: str) -> dict | None:
    """inferbench's copy of the hub's config.json for a common id (e.g. bert-large-uncased), or None."""
    name = model_id
    for org in CANONICAL_ORGS:
        name = name.removeprefix(org)
    path = SHIPPED_DIR / f"{name}.json"
    return json.loads(path.read_text()) if "/" not in name and path.is_file() else None


def local_config(model_id: str) -> tuple[dict, str] | None:
    """(config.json contents, where it came from) from a local folder or the Hugging Face cache, or None."""
    folder = Path(model_id) / "config.json"
    if folder.is_file():
        return json.loads(folder.read_text()), f"the local folder {model_id}"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # an id that is not a valid repository name, a cache that cannot be read
        cached = None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()), "the Hugging Face cache"
    return None


def find_config(model_id: str) -> tuple[dict, str]:
    """(config.json contents, source) without the network. Raises ModelConfigUnavailable naming what to do."""
    found = local_config(model_id)
    if found:
        return found
    shipped = shipped_config(model_id)
    if shipped is not None:
        return shipped, "the copy shipped with inferbench"
    raise ModelConfigUnavailable(
        f"model.id {model_id!r}: its config.json is neither a local folder, nor in the Hugging Face cache, nor "
        f"one of the configs inferbench ships ({', '.join(shipped_ids())}). Run where the hub is reachable, "
        "pre-fill the cache (HF_HOME), give a local folder with config.json, or pick a shipped id")


def max_positions(config: dict) -> int | None:
    """The longest input the model's position embeddings allow (None: no such limit in its config)."""
    value = config.get("max_position_embeddings", config.get("n_positions"))
    return int(value) if value is not None else None


def seq_len_problem(seq_len: int, config: dict, model_id: str) -> str | None:
    """Why the model cannot take sequences of `seq_len` tokens, or None."""
    limit = max_positions(config)
    if limit is not None and seq_len > limit:
        return (f"sweep.seq_lens has {seq_len}, but {model_id} has max_position_embeddings {limit}: "
                f"use seq_lens of at most {limit}")
    return None
