"""Calibration: metrics and intervals (`metrics`), stored prediction sets including a value function's
success predictions (`predictions`), CalibratedMath (`calibrated_math`) and verifier selection for GSM8K-style
problems (`verifiers`).

May import: workbench.storage, workbench.rl, workbench.episodes.
"""
