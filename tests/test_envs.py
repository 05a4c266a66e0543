"""Conda channels are unreachable here, so at least check envs/ pins the same packages as pyproject.toml."""
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO


def normalised(requirements):
    return {Requirement(r).name.lower(): (str(Requirement(r).specifier), sorted(Requirement(r).extras))
            for r in requirements}


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "inferbench.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert normalised(pip_section) == normalised(project)


def test_conda_env_python_satisfies_requires_python():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "inferbench.yaml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    from packaging.specifiers import SpecifierSet

    assert python.split("=", 1)[1] in SpecifierSet(project["requires-python"])
