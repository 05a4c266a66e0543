"""The report's tables built from aggregated cells (the whole report is covered by test_pipeline)."""
import pandas as pd

from workflow_scripts import report


def test_environment_table_counts_cells_per_machine_outside_slurm():
    """Runs outside Slurm have no job id (NaN): each machine's cells are still counted."""
    machine = {"hostname": "node1", "gpu_name": "NVIDIA H200", "cpu": "Xeon", "torch": "2.11", "git_commit": "abc",
               "slurm_job_id": float("nan")}
    table = pd.DataFrame([machine] * 3 + [{**machine, "hostname": "node2", "slurm_job_id": 42.0}])
    env = report.environment_table(table)
    assert env.set_index("hostname")["cells"].to_dict() == {"node1": 3, "node2": 1}
