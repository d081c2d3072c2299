""":class:`LabelStore`: the label store's public class, composed of one part per job (see the package docstring)."""

from __future__ import annotations

from workbench.preferences.labels.campaigns import CampaignsAndItems
from workbench.preferences.labels.connection import StoreConnection
from workbench.preferences.labels.queue import AssignmentQueue
from workbench.preferences.labels.reading import LabelReading
from workbench.preferences.labels.transfer import ExportImport


class LabelStore(CampaignsAndItems, AssignmentQueue, LabelReading, ExportImport, StoreConnection):
    """Campaigns, items, assignments and labels in ``<root>/labels.sqlite`` (see the package docstring)."""
