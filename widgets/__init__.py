"""Browser views of the workbench (Panel). ``workbench/`` stays headless; all UI lives here.

Importing this package is cheap: Panel is imported only when a view is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from widgets.adjudication import AdjudicationView
    from widgets.app import build_app
    from widgets.calibration_tab import CalibrationTab
    from widgets.comparison import ComparisonWidget
    from widgets.demonstrations_tab import DemonstrationsTab
    from widgets.hex_tab import HexTab
    from widgets.labeling import LabelingTab
    from widgets.overoptimization_view import OveroptimizationView
    from widgets.reliability_diagram import ReliabilityDiagram
    from widgets.rollout_viewer import RolloutComparison, RolloutViewer
    from widgets.rollouts_tab import RolloutsTab
    from widgets.runs_table import RunsTable
    from widgets.safety_tab import SafetyTab
    from widgets.studies_tab import StudiesTab
    from widgets.training_monitor import TrainingMonitor

# name -> module; each is imported on first use.
_LAZY = {
    "build_app": "widgets.app",
    "RunsTable": "widgets.runs_table",
    "TrainingMonitor": "widgets.training_monitor",
    "RolloutViewer": "widgets.rollout_viewer",
    "RolloutComparison": "widgets.rollout_viewer",
    "RolloutsTab": "widgets.rollouts_tab",
    "ComparisonWidget": "widgets.comparison",
    "LabelingTab": "widgets.labeling",
    "AdjudicationView": "widgets.adjudication",
    "ReliabilityDiagram": "widgets.reliability_diagram",
    "CalibrationTab": "widgets.calibration_tab",
    "HexTab": "widgets.hex_tab",
    "OveroptimizationView": "widgets.overoptimization_view",
    "StudiesTab": "widgets.studies_tab",
    "ProcgenPlayer": "widgets.procgen_player",
    "DemonstrationsTab": "widgets.demonstrations_tab",
    "SafetyTab": "widgets.safety_tab",
}
__all__ = ["AdjudicationView", "CalibrationTab", "ComparisonWidget", "DemonstrationsTab", "HexTab",
           "LabelingTab", "OveroptimizationView", "ProcgenPlayer", "ReliabilityDiagram", "RolloutComparison",
           "RolloutViewer", "RolloutsTab", "RunsTable", "SafetyTab", "StudiesTab", "TrainingMonitor",
           "build_app"]  # = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'widgets' has no attribute {name!r}")
