"""Conda channels are unreachable here (and conda is not installed), so check what can be checked without
them: envs/ pins the same packages as pyproject.toml, and `--sdm conda` gives every job that runs the
project's Python that environment."""
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO, TEST_CONFIG


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


def test_sdm_conda_gives_every_rule_that_runs_the_projects_python_the_environment(tmp_path):
    """The README once offered `--sdm conda` while no rule had a `conda:` directive (it did nothing). The
    workflow is read with Snakemake's API as `snakemake --sdm conda` reads it; creating the environment
    needs conda and its channels, which this machine lacks."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DeploymentMethod, DeploymentSettings, OutputSettings,
                                          ResourceSettings)

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[REPO / "config.yaml", TEST_CONFIG]),
                                deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
                                snakefile=REPO / "Snakefile", workdir=tmp_path)._workflow
        envs = {rule.name: rule.conda_env for rule in workflow.rules}
    # `all` runs nothing; `pull_triton_image` runs only `apptainer pull`
    assert envs.pop("all") is None and envs.pop("pull_triton_image") is None
    assert set(envs.values()) == {"../envs/inferbench.yaml"}  # relative to rules/, where the rules live
    assert (REPO / "rules" / "../envs/inferbench.yaml").is_file()
