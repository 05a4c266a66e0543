"""A Snakemake job's log from the script's first line: called before a step imports anything else, so that an
error raised while it imports its modules (a missing package) or before it sets up logging reaches the job's
log, not only Snakemake's console. Standard library only, so that this import itself cannot fail that way."""

import sys


class Tee:
    """A text stream that writes to several: the console and a job's log."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding...: the console's
        return getattr(self.streams[0], name)


def tee_stderr(log_path: str):
    """Copy whatever is written to stderr from now on (an uncaught exception's traceback, a SystemExit message,
    warnings) into `log_path`, truncated once: a second call for the same path reuses the open file.
    Returns the log's text stream (line-buffered)."""
    if isinstance(sys.stderr, Tee) and getattr(sys.stderr.streams[1], "name", None) == log_path:
        return sys.stderr.streams[1]
    log_file = open(log_path, "w", buffering=1)
    sys.stderr = Tee(sys.__stderr__, log_file)
    return log_file


def capture_errors(script_globals: dict) -> None:
    """In a Snakemake `script:` job with a `log:` (`snakemake` among the script's globals), tee stderr into
    the job's first log file; elsewhere (command line, imports) do nothing."""
    smk = script_globals.get("snakemake")
    if smk is not None and len(smk.log):
        tee_stderr(smk.log[0])
