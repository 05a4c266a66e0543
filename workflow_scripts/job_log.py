"""A Snakemake job's log from the script's first line: called before a step imports anything else, so that an
error raised while it imports its modules (a missing package) or before it sets up logging reaches the job's
log, not only Snakemake's console. Standard library only, so that this import itself cannot fail that way.

A local job's stdout and stderr are Snakemake's console (a cluster job's: its scheduler's log). From the first
line on, a job's file descriptors 1 and 2 go to its log, so that whatever a library or a child process writes
there (a native library's messages, a compiler's, a subprocess's) is kept in the log and off the console; the
console keeps only what Python writes to stderr (an error's traceback, a SystemExit message) and the progress
lines a step chooses to show (step_io.setup_logging)."""

import os
import sys
import warnings

# Progress bars of huggingface_hub, transformers (weight loading, shard writing) and datasets: in a log they
# are one line of carriage returns per bar, and a step reports its own progress
QUIET_LIBRARIES = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


class Tee:
    """A text stream that writes to several: the console and a job's log."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        """Write text to every stream; returns its length in characters."""
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        """Flush every stream."""
        for stream in self.streams:
            stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding...: the console's
        return getattr(self.streams[0], name)


def console():
    """The stream that reaches the person running the workflow: in a job whose stderr is teed into its log
    (tee_stderr), the console's own stream; elsewhere sys.stderr."""
    return sys.stderr.streams[0] if isinstance(sys.stderr, Tee) else sys.stderr


def tee_stderr(log_path: str):
    """Copy whatever Python writes to stderr from now on (an uncaught exception's traceback, a SystemExit
    message) into `log_path`, truncated once, send Python warnings to the log only, and point file descriptors
    1 and 2 at the log, so that native libraries and child processes write there instead of the console. A second call for the same path
    reuses the open file. Returns the log's text stream (line-buffered)."""
    if isinstance(sys.stderr, Tee) and getattr(sys.stderr.streams[1], "name", None) == log_path:
        return sys.stderr.streams[1]
    log_file = open(log_path, "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    # the console: a descriptor of its own, before 2 is pointed at the log
    terminal = open(os.dup(sys.__stderr__.fileno()), "w", buffering=1, encoding=sys.__stderr__.encoding,
                    errors="backslashreplace")
    os.dup2(log_file.fileno(), 1)  # one open file: the log's offset is shared, nothing is overwritten
    os.dup2(log_file.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)  # in the log's order with the lines written around it
    sys.stderr = Tee(terminal, log_file)
    # a library's warnings (Inductor's TF32 hint, the profiler's, transformers' deprecations) are its noise:
    # in the log, not on the console; errors still reach both
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log_file.write(
        warnings.formatwarning(message, category, filename, lineno, line))
    return log_file


def capture_errors(script_globals: dict) -> None:
    """In a Snakemake `script:` job with a `log:` (`snakemake` among the script's globals), tee stderr into
    the job's first log file and keep the libraries' progress bars off; elsewhere (command line, imports) do
    nothing."""
    smk = script_globals.get("snakemake")
    if smk is not None and len(smk.log):
        for name, value in QUIET_LIBRARIES.items():
            os.environ.setdefault(name, value)  # before the step imports them; a user's own setting wins
        tee_stderr(smk.log[0])
