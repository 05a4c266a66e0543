"""Glue shared by every step: running as a Snakemake script or as a command-line program."""

import logging
import sys


def setup_logging(log_path: str | None = None) -> None:
    """Log to the rule's log file (Snakemake) or to stderr (command line)."""
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def snakemake_log(smk) -> str | None:
    return smk.log[0] if len(smk.log) else None
