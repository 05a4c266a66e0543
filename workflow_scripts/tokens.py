"""Step 3: tokenize the dataset once per sequence length; cut it into device-resident batches for engines.

Tokens are stored padded to `seq_len` (the original study's `padding: max_length`); `dynamic` padding
is derived per batch by trimming to the batch's longest sentence, so both share one tokenize job.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import io
import json
import logging
from pathlib import Path

import torch

from workflow_scripts.dataset import read_rows
from workflow_scripts.model import load_info
from workflow_scripts.model_config import seq_len_problem
from workflow_scripts.results import atomic_write_bytes
from workflow_scripts.step_io import run_step, setup_logging

log = logging.getLogger("tokens")
PADDINGS = ("max_length", "dynamic")


def tokenize(model_dir: str, dataset_rows: str, seq_len: int, out_path: str) -> dict:
    """Token ids of every dataset row padded to seq_len with the model's tokenizer, written to out_path:
    {input_ids, attention_mask: int64 [rows, seq_len], labels: int64 [rows], seq_len}. Raises SystemExit when
    seq_len exceeds the model's position embeddings."""
    from transformers import AutoTokenizer

    # planning checks this where the model's config is known beforehand; a config fetched by the model job
    # is checked here, before any engine meets an input longer than its position embeddings
    problem = seq_len_problem(seq_len, json.loads((Path(model_dir) / "config.json").read_text()),
                              load_info(model_dir)["model_id"])
    if problem:
        raise SystemExit(problem)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = read_rows(dataset_rows)
    encoded = tokenizer([row["sentence"] for row in rows], padding="max_length", truncation=True,
                        max_length=seq_len, return_tensors="pt")
    tokens = {
        "input_ids": encoded["input_ids"].to(torch.int64),
        "attention_mask": encoded["attention_mask"].to(torch.int64),
        "labels": torch.tensor([row["label"] for row in rows], dtype=torch.int64),
        "seq_len": seq_len,
    }
    buffer = io.BytesIO()
    torch.save(tokens, buffer)
    atomic_write_bytes(out_path, buffer.getvalue())
    lengths = tokens["attention_mask"].sum(dim=1)
    truncated = int((lengths == seq_len).sum())
    log.info("%d sentences, mean length %.1f tokens, %d reach seq_len %d", len(rows), lengths.float().mean(),
             truncated, seq_len)
    return tokens


def load_tokens(path: str) -> dict:
    """The tokenize step's file: input_ids and attention_mask int64 [rows, seq_len], labels int64 [rows]."""
    return torch.load(path, weights_only=True)


def batch_rows(num_rows: int, batch_size: int, max_batches: int | None = None) -> list[torch.Tensor]:
    """Row indices of consecutive batches; wraps around when the dataset is smaller than a batch."""
    count = max(1, -(-num_rows // batch_size))
    if max_batches:
        count = min(count, max_batches)
    return [torch.arange(i * batch_size, (i + 1) * batch_size) % num_rows for i in range(count)]


def make_batch(tokens: dict, rows: torch.Tensor, padding: str, device: str) -> dict:
    """One batch of `rows` on `device`: {rows, input_ids, attention_mask} int64 [batch, seq]; dynamic padding cuts
    seq to the batch's longest sentence. ValueError on an unknown padding."""
    input_ids = tokens["input_ids"][rows]
    attention_mask = tokens["attention_mask"][rows]
    if padding == "dynamic":
        longest = int(attention_mask.sum(dim=1).max())
        input_ids, attention_mask = input_ids[:, :longest], attention_mask[:, :longest]
    elif padding != "max_length":
        raise ValueError(f"padding {padding!r}: expected one of {PADDINGS}")
    return {"rows": rows, "input_ids": input_ids.contiguous().to(device),
            "attention_mask": attention_mask.contiguous().to(device)}


def main(argv=None) -> None:
    """The command line: tokenize the dataset rows at one sequence length (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--dataset-rows", required=True)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    tokenize(args.model_dir, args.dataset_rows, args.seq_len, args.out)


def run_job(smk) -> None:
    """The job of rules/tokens.smk, called by `step_io.run_step`."""
    tokenize(smk.input.model_dir, smk.input.rows, int(smk.wildcards.seq_len), smk.output.tokens)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
