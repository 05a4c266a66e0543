"""inferbench: the Python side of the pipeline. One module per step, one module per engine."""
