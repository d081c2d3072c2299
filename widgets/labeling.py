"""Labeling tab: create preference campaigns, label them, see agreement statistics, export the labels.

In a notebook::

    from widgets.labeling import LabelingTab
    LabelingTab(store_root="runs")

Roles (see docs/labeling.md):

* ``role="admin"`` (the default, and local single-user mode): campaigns can be created from recorded rollouts
  (clip pairs sampled by :func:`workbench.episodes.clips.sample_clip_pairs`) or from a JSONL file of text pairs /
  rankings (:func:`workbench.preferences.labels.read_items_jsonl`), labeled, and their statistics
  (:func:`workbench.preferences.agreement.campaign_agreement`) seen and exported.
* ``role="labeler"``: only the labeling view, with the labeler's own progress; no statistics, no export,
  nothing of other labelers' labels.

The labeler is ``user`` when given, else the logged-in user (``pn.state.user``) when the app is served with
logins, else a name typed in the page (local mode, serving on 127.0.0.1 without logins). With
``require_login`` the tab refuses to label without a logged-in user.
"""

from __future__ import annotations

import html
import io
import math
import os
import tempfile
from pathlib import Path

import panel as pn
import param

from widgets.adjudication import AdjudicationView, suggestion_text
from widgets.comparison import STORE_ERRORS, ComparisonWidget
from workbench.episodes.clips import (
    DEFAULT_CLIP_LENGTH,
    STRATEGIES,
    ensemble_disagreement_scorer,
    sample_clip_pairs,
)
from workbench.preferences.labels import CAMPAIGN_KINDS, LabelStore, read_items_jsonl
from workbench.preferences.labels.formats import detect_format, read_rows


def _error(text: str) -> str:
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'


def _ok(text: str) -> str:
    return f'<div style="color:#2e7d32">{html.escape(text)}</div>'


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 10px'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 10px'>{html.escape(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def current_user() -> str | None:
    """The logged-in user of this browser session (None when not served or served without logins)."""
    return pn.state.user


class LabelingTab(pn.viewable.Viewer):
    """The labeling dashboard tab (see the module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the stores (labels.sqlite, rollouts); None means $WORKBENCH_HOME, else ./runs.""")
    user = param.String(default=None, allow_None=True, doc="""
        The labeler; None: the logged-in user, else typed in the page.""")
    role = param.Selector(default="admin", objects=["admin", "labeler"], doc="""
        admin: campaigns, statistics and export; labeler: only labeling, with one's own progress.""")
    require_login = param.Boolean(default=False, doc="Refuse to label without a logged-in user.")
    disagreement_scorer = param.Callable(default=None, doc="""
        scorer(payloads) -> scores for strategy "disagreement" (e.g. ensemble_disagreement_scorer(...));
        None: load the reward model named in the form.""")
    suggestion_model = param.Parameter(default=None, doc="""
        A loaded reward model (workbench.preferences.reward.load_reward_model): after each answer (never before,
        so it cannot anchor the labeler) the labeler sees its predicted preference and confidence; admins see
        it in the adjudication view. None: no suggestions.""")

    def __init__(self, **params):
        super().__init__(**params)
        self.store = LabelStore(self.store_root)
        if self.user is None:
            self.user = current_user()
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-labeling-message"])
        if self.require_login and not self.user:
            self.comparison = None
            self._layout = pn.Column(pn.pane.HTML(
                _error("Log in to label: this server requires a login, and labels are attributed to the "
                       "logged-in user."), css_classes=["wb-login-required"]), sizing_mode="stretch_width")
            return
        self.campaign_select = pn.widgets.Select(label="Campaign", options=[], css_classes=["wb-campaign"],
                                                 width=300)
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.refresh_button.on_click(lambda _e: self.refresh_campaigns())
        if self.user:
            self.labeler_input = None
            identity = pn.pane.HTML(f"Labeling as <b>{html.escape(self.user)}</b>", css_classes=["wb-identity"])
        else:
            self.labeler_input = pn.widgets.TextInput(label="Your labeler name", placeholder="e.g. alice",
                                                      css_classes=["wb-labeler-name"], width=220)
            self.labeler_input.param.watch(lambda e: self._set_labeler(e.new), "value")
            identity = self.labeler_input
        self.comparison = ComparisonWidget(store=self.store, labeler=self.user or "")
        self.campaign_select.param.watch(lambda e: setattr(self.comparison, "campaign", e.new or ""), "value")
        self.suggestion = pn.pane.HTML("", css_classes=["wb-suggestion"], sizing_mode="stretch_width")
        self.comparison.param.watch(lambda e: self.show_suggestion(e.new), "last_label_id")
        label_view = pn.Column(pn.Row(self.campaign_select, identity, self.refresh_button), self.comparison,
                               self.suggestion, sizing_mode="stretch_width")
        if self.role == "labeler":
            self._layout = pn.Column(label_view, self.message, sizing_mode="stretch_width",
                                     css_classes=["wb-labeler-view"])
        else:
            self._build_admin()
            self.adjudication = AdjudicationView(store=self.store, admin=self.user or "admin",
                                                 reward_model=self.suggestion_model)
            self._layout = pn.Tabs(("Label", label_view), ("New campaign", self.create_view),
                                   ("Statistics", self.stats_view), ("Adjudication", self.adjudication),
                                   sizing_mode="stretch_width", css_classes=["wb-admin-view"])
        self.refresh_campaigns()

    # ---- labeling ------------------------------------------------------------------------------------

    def _set_labeler(self, name: str) -> None:
        self.comparison.labeler = (name or "").strip()

    def suggestion_html(self, label_id: int | None) -> str:
        """The reward model's view of the label just given (as shown: left / right), or "" when there is
        no model, no answer yet, or the item is not a pair."""
        if self.suggestion_model is None or label_id is None or not self.comparison.campaign:
            return ""
        from workbench.episodes.rollouts import RolloutStore
        from workbench.preferences.reward.suggest import suggest

        mine = [lab for lab in self.store.labels(self.comparison.campaign, labeler=self.comparison.labeler)
                if lab.id == label_id]
        if not mine or "a" not in mine[0].payload:
            return ""
        lab = mine[0]
        [s] = suggest(self.suggestion_model, [lab.payload], rollout_store=RolloutStore(self.store.root))
        left, right = ("right", "left") if lab.swapped else ("left", "right")
        return f"<p>After your answer ({html.escape(lab.choice)}): {html.escape(suggestion_text(s, left, right))}</p>"

    def show_suggestion(self, label_id: int | None) -> None:
        try:
            self.suggestion.object = self.suggestion_html(label_id)
        except (ValueError, RuntimeError, *STORE_ERRORS) as e:
            self.suggestion.object = _error(f"No model suggestion: {e}")

    def refresh_campaigns(self) -> None:
        try:
            names = [c.name for c in self.store.list_campaigns()]
        except STORE_ERRORS as e:  # locked or unreadable for now: keep what is shown, say so
            self.message.object = _error(f"Could not read the label store ({e}); press Refresh to try again.")
            return
        current = self.campaign_select.value
        self.campaign_select.options = names
        if current in names:
            self.campaign_select.value = current
        elif names:
            self.campaign_select.value = names[0]
        if self.role == "admin":
            self.stats_campaign.options = names
            if self.stats_campaign.value not in names and names:
                self.stats_campaign.value = names[0]
            self._refresh_episodes()
            self.adjudication.refresh_campaigns()

    # ---- creating campaigns (admin) ---------------------------------------------------------------------

    def _build_admin(self) -> None:
        self.form_name = pn.widgets.TextInput(label="Campaign name", css_classes=["wb-new-name"])
        self.form_kind = pn.widgets.Select(label="Kind", options=list(CAMPAIGN_KINDS), value="clip_pair")
        self.form_overlap = pn.widgets.IntInput(label="Labelers per item (overlap)", value=1, start=1)
        self.form_graded = pn.widgets.Checkbox(label="Graded 7-point scale (WebGPT)")
        self.form_markdown = pn.widgets.Checkbox(label="Render text as Markdown (raw HTML disabled)")
        self.form_flags = pn.widgets.TextInput(label="Flags (comma-separated)", placeholder="offensive, broken clip")
        self.form_guidelines = pn.widgets.TextAreaInput(label="Guidelines (Markdown)", rows=4,
                                                        sizing_mode="stretch_width")
        self.form_episodes = pn.widgets.MultiSelect(label="Episodes", options={}, size=8, width=520)
        self.form_length = pn.widgets.IntInput(label="Clip length (steps)", value=DEFAULT_CLIP_LENGTH, start=1)
        self.form_pairs = pn.widgets.IntInput(label="Pairs", value=50, start=1)
        self.form_strategy = pn.widgets.Select(label="Strategy", options=list(STRATEGIES), value="uniform")
        self.form_reward_model = pn.widgets.TextInput(label="Reward model (for disagreement)",
                                                      placeholder="path saved by save_reward_model")
        self.form_seed = pn.widgets.IntInput(label="Seed", value=0)
        self.create_rollouts_button = pn.widgets.Button(label="Create from rollouts", color="primary")
        self.create_rollouts_button.on_click(lambda _e: self._create_from_form())
        self.form_file = pn.widgets.FileInput(accept=".jsonl,.json,.txt,.gz,.parquet", multiple=False)
        self.form_items_only = pn.widgets.Checkbox(label="Published data: items only (relabel them)")
        self.create_jsonl_button = pn.widgets.Button(label="Create from JSONL", color="primary")
        self.create_jsonl_button.on_click(lambda _e: self._create_from_file())
        common = pn.Column(pn.Row(self.form_name, self.form_kind, self.form_overlap),
                           pn.Row(self.form_graded, self.form_markdown, self.form_flags), self.form_guidelines,
                           pn.Row(self.form_strategy, self.form_reward_model),
                           sizing_mode="stretch_width")
        rollouts = pn.Card(self.form_episodes, pn.Row(self.form_length, self.form_pairs, self.form_seed),
                           self.create_rollouts_button,
                           title="Clip pairs from recorded rollouts", sizing_mode="stretch_width")
        jsonl = pn.Card(pn.pane.HTML("One item per line: <code>{\"prompt\", \"a\", \"b\", \"meta\"}</code> "
                                     "(text_pair) or <code>{\"prompt\", \"responses\": [...], \"meta\"}</code> "
                                     "(ranking, 2 to 9 responses); or published preference data as released "
                                     "(TRL, HH-RLHF, WebGPT, summarize-from-feedback, rankings; see "
                                     "docs/labels_schema.md), with its labels unless items only."),
                        self.form_file, self.form_items_only, self.create_jsonl_button,
                        title="Text pairs or rankings from a JSONL file",
                        sizing_mode="stretch_width")
        self.create_view = pn.Column(common, rollouts, jsonl, self.message, sizing_mode="stretch_width")

        self.stats_campaign = pn.widgets.Select(label="Campaign", options=[], width=300)
        self.stats_button = pn.widgets.Button(label="Compute statistics", width=160)
        self.stats_button.on_click(lambda _e: self.show_statistics())
        self.stats_pane = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-stats"])
        self.export_jsonl = pn.widgets.FileDownload(callback=lambda: self._export("jsonl"), filename="labels.jsonl",
                                                    label="Export JSONL", width=140)
        self.export_parquet = pn.widgets.FileDownload(callback=lambda: self._export("parquet"),
                                                      filename="labels.parquet", label="Export Parquet", width=140)
        self.stats_campaign.param.watch(lambda e: self._stats_campaign_changed(e.new), "value")
        self.stats_view = pn.Column(pn.Row(self.stats_campaign, self.stats_button, self.export_jsonl,
                                           self.export_parquet), self.stats_pane, sizing_mode="stretch_width")

    def _refresh_episodes(self) -> None:
        from workbench.episodes.rollouts import RolloutStore

        infos = RolloutStore(self.store.root).list()
        self.form_episodes.options = {
            f"{i.id} · {i.env} · return {i.ret:g} · {i.length} steps" + (" · hi-res" if i.has_hires else ""): i.id
            for i in infos}

    def _campaign_args(self) -> dict:
        flags = tuple(f.strip() for f in self.form_flags.value.split(",") if f.strip())
        return {"overlap": int(self.form_overlap.value), "guidelines_md": self.form_guidelines.value or "",
                "graded_scale": bool(self.form_graded.value), "flags": flags,
                "meta": {"markdown": bool(self.form_markdown.value)}}

    def create_from_rollouts(self, name: str, episode_ids: list[str], *, n_pairs: int,
                             length: int = DEFAULT_CLIP_LENGTH, strategy: str = "uniform", seed: int = 0,
                             scorer=None, **campaign_args) -> int:
        """Sample clip pairs from the episodes and create a clip_pair campaign with them; returns the number
        of items. Everything is checked before the campaign is created."""
        from workbench.episodes.rollouts import RolloutStore

        if not episode_ids:
            raise ValueError("choose at least one episode")
        rollouts = RolloutStore(self.store.root)
        infos = [rollouts.info(e) for e in episode_ids]
        if strategy == "disagreement" and scorer is None:
            scorer = self.disagreement_scorer or self._scorer_from_form(rollouts)
        payloads = sample_clip_pairs(infos, n_pairs, length=length, rng=seed, strategy=strategy,
                                     scorer=scorer if strategy == "disagreement" else None)
        return self._create(name, "clip_pair", payloads, campaign_args)

    def _scorer_from_form(self, rollouts):
        path = self.form_reward_model.value.strip() if hasattr(self, "form_reward_model") else ""
        if not path:
            raise ValueError('strategy "disagreement" needs a reward-model ensemble: give its path')
        try:
            from workbench.preferences.reward import load_reward_model
        except ImportError as e:
            raise ValueError(f"reward models are not available in this workbench: {e}") from None
        model = load_reward_model(path)
        if model.kind == "text":
            from workbench.preferences.reward.suggest import disagreement_scorer

            return disagreement_scorer(model)
        return ensemble_disagreement_scorer(model, rollouts)

    def create_from_jsonl(self, name: str, kind: str, data: bytes, *, filename: str = "upload.jsonl",
                          items_only: bool = False, strategy: str = "uniform", scorer=None,
                          n_items: int | None = None, **campaign_args) -> int:
        """Create a text_pair / ranking campaign from JSONL bytes; a bad line is a ValueError naming it.
        A published preference file (TRL, HH-RLHF, WebGPT, summarize-from-feedback, rankings; detected
        from its fields) brings its items and, unless ``items_only``, its labels
        (:meth:`~workbench.preferences.labels.LabelStore.import_public`); its kind follows from the format.
        ``strategy="disagreement"`` (text pairs): the ``n_items`` (default all) items a reward-model ensemble
        disagrees on most, most first, so the queue hands them out first (Christiano et al. Sec. 2.2.4)."""
        if kind not in ("text_pair", "ranking"):
            raise ValueError(f"a JSONL file makes a text_pair or ranking campaign, not {kind!r}")
        with tempfile.TemporaryDirectory() as tmp:
            lower = filename.lower()  # only the suffix is kept: it says how to read the file
            path = Path(tmp) / ("upload" + (".parquet" if lower.endswith(".parquet") else
                                            ".jsonl.gz" if lower.endswith(".gz") else ".jsonl"))
            path.write_bytes(data)
            try:
                if self._is_public(path):
                    return self._import_public(name, path, filename, items_only, campaign_args)
                payloads = read_items_jsonl(path, kind)
            except UnicodeDecodeError as e:
                raise ValueError(f"{filename}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            except ValueError as e:
                raise ValueError(str(e).replace(str(path), filename)) from None
        if not payloads:
            raise ValueError(f"{filename} has no items")
        if strategy == "disagreement":
            if kind != "text_pair":
                raise ValueError('strategy "disagreement" orders pairs; a ranking file is taken as it is')
            from workbench.preferences.reward.suggest import order_by_disagreement

            scorer = scorer or self.disagreement_scorer or self._scorer_from_form(None)
            payloads = order_by_disagreement(payloads, scorer, n_items)
        return self._create(name, kind, payloads, campaign_args)

    @staticmethod
    def _is_public(path: Path) -> bool:
        rows = read_rows(path)
        if not rows or set(rows[0][1]) <= {"prompt", "a", "b", "meta", "responses"}:
            return False  # a workbench items file
        detect_format(rows[0][1])  # neither: a ValueError naming the known formats
        return True

    def _import_public(self, name: str, path: Path, filename: str, items_only: bool, campaign_args: dict) -> int:
        name = (name or "").strip()
        if not name:
            raise ValueError("give the campaign a name")
        if name in {c.name for c in self.store.list_campaigns()}:
            raise ValueError(f"a campaign named {name!r} already exists; choose another name")
        report = self.store.import_public(path, name, items_only=items_only, **campaign_args)
        self.refresh_campaigns()
        return report["items"]

    def _create(self, name: str, kind: str, payloads: list[dict], campaign_args: dict) -> int:
        name = (name or "").strip()
        if not name:
            raise ValueError("give the campaign a name")
        if name in {c.name for c in self.store.list_campaigns()}:
            raise ValueError(f"a campaign named {name!r} already exists; choose another name")
        self.store.create_campaign(name, kind, **campaign_args)
        ids = self.store.add_items(name, payloads)
        self.refresh_campaigns()
        return len(ids)

    def _create_from_form(self) -> None:
        try:
            n = self.create_from_rollouts(self.form_name.value, list(self.form_episodes.value),
                                          n_pairs=int(self.form_pairs.value), length=int(self.form_length.value),
                                          strategy=self.form_strategy.value, seed=int(self.form_seed.value),
                                          **self._campaign_args())
        except (ValueError, *STORE_ERRORS) as e:
            self.message.object = _error(f"Not created: {e}")
            return
        self.message.object = _ok(f"Created campaign {self.form_name.value.strip()!r} with {n} clip pairs.")

    def _create_from_file(self) -> None:
        if self.form_file.value is None:
            self.message.object = _error("Choose a JSONL file first.")
            return
        kind = self.form_kind.value if self.form_kind.value != "clip_pair" else "text_pair"
        try:
            n = self.create_from_jsonl(self.form_name.value, kind, self.form_file.value,
                                       filename=self.form_file.filename or "upload.jsonl",
                                       items_only=bool(self.form_items_only.value), strategy=self.form_strategy.value,
                                       **self._campaign_args())
        except (ValueError, *STORE_ERRORS) as e:
            self.message.object = _error(f"Not created: {e}")
            return
        self.message.object = _ok(f"Created {kind} campaign {self.form_name.value.strip()!r} with {n} items.")

    # ---- statistics and export (admin) --------------------------------------------------------------------

    def _stats_campaign_changed(self, name) -> None:
        if name:
            self.export_jsonl.filename = f"{name}.jsonl"
            self.export_parquet.filename = f"{name}.parquet"
        self.stats_pane.object = ""

    def statistics_html(self, campaign: str) -> str:
        """Progress and agreement (pairwise with half credit, Cohen's and Fleiss' kappa, majority) as HTML."""
        from workbench.preferences.agreement import campaign_agreement

        progress = self.store.progress(campaign)
        report = campaign_agreement(self.store, campaign)
        disputed = self.store.disagreements(campaign)
        out = [(f"<p>Items {progress['items']} · target {progress['target']} labels (items × overlap) · "
                f"labeled {progress['labeled']} · in progress {progress['assigned']}</p>")]
        excluded = ", ".join(f"{k} {v}" for k, v in report.excluded.items())
        out.append(_table(["statistic", "value"], [
            ["units with answers", report.n_units],
            ["pairwise agreement (equal vs other = half)",
             f"{_pct(report.pairwise.overall)} over {report.pairwise.n_pairs} labeler pairs"],
            ["Fleiss' kappa", (f"{_num(report.fleiss.kappa)} ({report.fleiss.units_used} units with "
                               f"{report.fleiss.n_raters} ratings; {report.fleiss.units_dropped} left out)")],
            ["agreement with the leave-one-out majority", _pct(report.majority_overall)],
            ["Krippendorff's alpha (nominal)", _num(report.alpha_nominal)],
            *([["graded scale: Krippendorff's alpha ordinal / interval",
                f"{_num(report.graded.alpha_ordinal)} / {_num(report.graded.alpha_interval)}"],
               ["graded scale: weighted kappa linear / quadratic",
                " / ".join(_num(k) for k in report.graded.weighted_kappa)]] if report.graded else []),
            ["answers left out (can't tell / skip)", excluded or "none"],
            ["items the labelers disagree on / adjudicated",
             f"{len(disputed)} / {sum(d.adjudication is not None for d in disputed)}"],
        ]))
        rows = []
        for lab in report.labelers:
            majority = report.majority_by_labeler.get(lab)
            rows.append([lab, report.labels_by_labeler.get(lab, 0), _pct(report.pairwise.by_labeler.get(lab)),
                         _num(report.cohen_by_labeler.get(lab)), _pct(majority[0] if majority else None)])
        out.append("<h4>Per labeler</h4>")
        out.append(_table(["labeler", "labels", "pairwise agreement", "Cohen's kappa (mean)",
                           "agreement with majority"], rows))
        return "".join(out)

    def show_statistics(self) -> None:
        name = self.stats_campaign.value
        if not name:
            self.stats_pane.object = _error("No campaign yet.")
            return
        try:
            self.stats_pane.object = self.statistics_html(name)
        except (ValueError, *STORE_ERRORS) as e:
            self.stats_pane.object = _error(f"Could not compute statistics: {e}")

    def _export(self, fmt: str) -> io.BytesIO:
        name = self.stats_campaign.value
        if not name:
            raise ValueError("no campaign chosen")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"labels.{fmt}"
            (self.store.export_jsonl if fmt == "jsonl" else self.store.export_parquet)(name, path)
            return io.BytesIO(path.read_bytes())

    def __panel__(self):
        return self._layout
