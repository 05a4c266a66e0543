"""`--config` entries and `--configfile` files that Snakemake itself refuses with a bare traceback, named before
it starts.

Snakemake reads `--config key=value` with top-level keys only, and its own parser raises a ValueError (printed
as a traceback, before the workflow is read) for a dotted key (`sweep.batch_sizes=[2,16]`) or an entry without
`=` (an unquoted mapping that the shell split into several words). run.sh runs this check first and stops with
one line per bad entry, naming it and the form that works, and per `--configfile` that is not there or not a
mapping in YAML; the values themselves are checked against the config schema once the workflow is read
(experiment.schema_errors, which names keys the same way).

Command line: python -m workflow_scripts.command_line [SNAKEMAKE ARGUMENTS...]; exits 2 when an entry is bad.
"""

import re
import sys
from pathlib import Path

import yaml

from workflow_scripts.experiment import nested_override

# Snakemake's own rule for a --config key (snakemake/cli.py, parse_config)
SNAKEMAKE_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")
CONFIG_OPTIONS = ("--config", "-C")
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")


def option_values(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """The words Snakemake reads as values of `options`: those after one of them up to the next option, and
    the value of an `--option=value` word."""
    values, inside = [], False
    for word in argv:
        if word.split("=", 1)[0] in options and "=" in word:
            values.append(word.split("=", 1)[1])
            inside = True
        elif word in options:
            inside = True
        elif word.startswith("-"):
            inside = False
        elif inside:
            values.append(word)
    return values


def config_entries(argv: list[str]) -> list[str]:
    """The words Snakemake reads as `--config` entries (option_values of --config and -C)."""
    return option_values(argv, CONFIG_OPTIONS)


def configfile_problems(argv: list[str]) -> list[str]:
    """One line per `--configfile` that is missing, unreadable, not YAML or not a mapping (empty: none)."""
    lines = []
    for name in option_values(argv, CONFIGFILE_OPTIONS):
        path = Path(name)
        if not path.is_file():
            lines.append(f"--configfile {name}: no such file")
            continue
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            lines.append(f"--configfile {name}: not readable as YAML: {' '.join(str(error).split())}")
            continue
        if not isinstance(loaded, dict):
            lines.append(f"--configfile {name}: not a mapping of config keys (it holds a {type(loaded).__name__})")
    return lines


def problems(argv: list[str]) -> list[str]:
    """One line per `--config` entry or `--configfile` that Snakemake would refuse with a traceback (empty:
    none)."""
    lines = configfile_problems(argv)
    for entry in config_entries(argv):
        if "=" not in entry:
            lines.append(f"--config {entry!r}: not key=value. A mapping must be one word for the shell: quote it, "
                         'e.g. --config "sweep={batch_sizes: [2, 16]}"')
            continue
        key, value = entry.split("=", 1)
        if SNAKEMAKE_KEY.match(key):
            continue
        if "." in key and all(SNAKEMAKE_KEY.match(part) for part in key.split(".")):
            lines.append(f"--config {entry}: Snakemake takes top-level keys only, `{key}` is a dotted path. Write "
                         f"--config {nested_override(key.split('.'), value)} (the section's other keys keep their "
                         "values), or put it in a file for --configfile")
        else:
            lines.append(f"--config {entry}: `{key}` is no config key (a letter or _ first, then letters, digits, "
                         "_ or -)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print each problem of a snakemake command line (argv, without the program) to stderr, prefixed
    `inferbench:`; returns the exit status: 2 when there are problems, else 0."""
    found = problems(sys.argv[1:] if argv is None else argv)
    for line in found:
        print(f"inferbench: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main())
