"""The live training monitor's headless side: incremental metric reading, smoothing and downsampling
(`metrics`), starting, stopping and resuming runs as OS processes (`launch`), and machine use (`system`).
The dashboard in widgets/ draws what these compute.

May import: workbench.storage, workbench.rl, workbench.registry.
"""
