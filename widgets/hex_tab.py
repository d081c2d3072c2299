"""Hex tab: play Hex against any search agent by clicking cells, or watch two agents play; the last search's
visit counts (or its policy: PGS's adapted policy, the network's prior) are written on the empty cells; below,
the tournament tables stored by ``workbench hex tournament`` (docs/policy_gradient_search.md).

Black (●) moves first and joins the top and bottom rows; White (○) joins the left and right columns. Agents that
need a network use the one trained by a chosen expert-iteration run (``workbench hex train``), else an untrained
one. In a notebook::

    import panel as pn; pn.extension()
    from widgets.hex_tab import HexTab
    HexTab(store_root="runs")
"""

from __future__ import annotations

import html
import os

import numpy as np
import panel as pn
import param

from workbench.search.agents import AGENT_NAMES, NEEDS_NET, make_agent
from workbench.search.hex import HexState
from workbench.search.tournament import load_results
from workbench.storage.runs import RunStore

HUMAN = "human"
UNTRAINED = "untrained network"
COLOUR = ("Black ●", "White ○")
CELL_CSS = """
:host(.wb-hex-black) .bk-btn { background: #222 !important; color: #fff !important; opacity: 1 !important; }
:host(.wb-hex-white) .bk-btn { background: #fff !important; color: #222 !important; opacity: 1 !important;
                               border: 2px solid #222; }
:host(.wb-hex-last) .bk-btn { box-shadow: 0 0 0 3px #e8a33d inset; }
.bk-btn { font-size: 12px; padding: 0; }
"""


class HexTab(pn.viewable.Viewer):
    """A Hex board to play on or watch, with the search's view of the position (module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    board_size = param.Selector(default=5, objects=[3, 4, 5, 7, 9])
    black = param.Selector(default=HUMAN, objects=[HUMAN, *AGENT_NAMES])
    white = param.Selector(default="uct", objects=[HUMAN, *AGENT_NAMES])
    simulations = param.Integer(default=64, bounds=(1, 5000))
    overlay = param.Selector(default="visits", objects=["visits", "policy", "none"],
                             doc="What to write on empty cells after a search.")
    seed = param.Integer(default=0)

    def __init__(self, **params):
        super().__init__(**params)
        self.store = RunStore(self.store_root)
        self.state = HexState(self.board_size)
        self.last_info: dict = {}
        self._agents: dict[int, object] = {}
        self._nets: dict[str, object] = {}
        self._watch = None
        self.net_select = pn.widgets.Select(label="Network", options=[UNTRAINED], width=330,
                                            css_classes=["wb-hex-net"])
        self.new_button = pn.widgets.Button(label="New game", color="primary", width=110,
                                            css_classes=["wb-hex-new"])
        self.step_button = pn.widgets.Button(label="Agent move", width=110, css_classes=["wb-hex-step"])
        self.watch_button = pn.widgets.Toggle(label="Watch agents", width=120, css_classes=["wb-hex-watch"])
        self.status = pn.pane.HTML("", css_classes=["wb-hex-status"], sizing_mode="stretch_width")
        self.board_pane = pn.Column(css_classes=["wb-hex-board"])
        self.tables = pn.Column(css_classes=["wb-hex-tables"])
        self.refresh_button = pn.widgets.Button(label="Refresh tables", width=130)
        self.new_button.on_click(lambda _: self.new_game())
        self.step_button.on_click(lambda _: self.agent_move())
        self.watch_button.param.watch(self._toggle_watch, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        controls = pn.Param(self.param, parameters=["board_size", "black", "white", "simulations", "overlay"],
                            show_name=False, widgets={"simulations": pn.widgets.IntInput}, width=220)
        self._layout = pn.Row(
            pn.Column(controls, self.net_select, pn.Row(self.new_button, self.step_button), self.watch_button,
                      width=360),
            pn.Column(self.status, pn.pane.HTML("Black (●) joins top and bottom; White (○) joins left and right."),
                      self.board_pane, pn.layout.Divider(), pn.Row(pn.pane.Markdown("### Tournaments"),
                                                                   self.refresh_button), self.tables),
            sizing_mode="stretch_width")
        self.refresh()
        self.new_game()

    # ---- game flow -------------------------------------------------------------------------------------------

    def _player(self, colour: int) -> str:
        return self.black if colour == 0 else self.white

    @param.depends("board_size", "black", "white", "simulations", watch=True)
    def _settings_changed(self):
        self._refresh_nets()
        self.new_game()

    def new_game(self) -> None:
        self.state = HexState(self.board_size)
        self.last_info = {}
        self._agents = {}
        self._draw()
        if self._player(0) != HUMAN and self._player(1) == HUMAN:
            self.agent_move()  # the agent opens; the human answers

    def _net(self):
        choice = self.net_select.value or UNTRAINED
        if choice not in self._nets:
            if choice == UNTRAINED:
                import torch

                from workbench.search.net import PolicyValueNet

                torch.manual_seed(self.seed)
                self._nets[choice] = PolicyValueNet(self.board_size).eval()
            else:
                from workbench.search.exit import net_from_run

                self._nets[choice] = net_from_run(self.store, choice)
        return self._nets[choice]

    def _agent(self, colour: int):
        if colour not in self._agents:
            name = self._player(colour)
            net = self._net() if name in NEEDS_NET else None
            if net is not None and net.board_size != self.board_size:
                net = None
                self.net_select.value = UNTRAINED
                net = self._net()
            self._agents[colour] = make_agent(name, self.board_size, self.simulations, net, seed=self.seed + colour)
        return self._agents[colour]

    def play(self, action: int) -> None:
        """A human move (a click on cell `action`), then the agent's answer if the other side is an agent."""
        if self.state.done or self._player(self.state.to_play) != HUMAN or self.state.board[action] != 0:
            return
        self.state.apply(int(action))
        self.last_info = {}
        self._draw()
        if not self.state.done and self._player(self.state.to_play) != HUMAN:
            self.agent_move()

    def agent_move(self) -> None:
        if self.state.done or self._player(self.state.to_play) == HUMAN:
            return
        mover = self.state.to_play
        self.status.object = f"{COLOUR[mover]} ({html.escape(self._player(mover))}) is thinking…"
        try:
            action, self.last_info = self._agent(self.state.to_play).act(self.state)
        except (ValueError, RuntimeError) as exc:
            self.status.object = f"<b>error:</b> {html.escape(str(exc))}"
            return
        self.state.apply(action)
        self._draw()

    def _toggle_watch(self, event) -> None:
        if event.new and self._watch is None:
            self._watch = pn.state.add_periodic_callback(self._watch_step, period=400)
        elif not event.new and self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _watch_step(self) -> None:
        if self.state.done or self._player(self.state.to_play) == HUMAN:
            self.watch_button.value = False
            return
        self.agent_move()

    # ---- drawing ---------------------------------------------------------------------------------------------

    def _overlay_values(self) -> np.ndarray | None:
        key = {"visits": "counts", "policy": "policy"}.get(self.overlay)
        values = self.last_info.get(key) if key else None
        if values is None or np.sum(values) <= 0:
            return None
        return np.asarray(values, dtype=float) / np.sum(values)

    def _draw(self) -> None:
        n, state = self.board_size, self.state
        shares = self._overlay_values()
        last = state.moves[-1] if state.moves else -1
        human_turn = not state.done and self._player(state.to_play) == HUMAN
        rows = []
        for r in range(n):
            cells = [pn.Spacer(width=23 * r)]
            for c in range(n):
                a = r * n + c
                stone = int(state.board[a])
                label = "●" if stone == 1 else "○" if stone == 2 else (
                    f"{100 * shares[a]:.0f}" if shares is not None and shares[a] >= 0.005 else "")
                classes = ["wb-hex-cell", f"wb-hex-cell-{a}"] + (["wb-hex-black"] if stone == 1 else []) + (
                    ["wb-hex-white"] if stone == 2 else []) + (["wb-hex-last"] if a == last else [])
                button = pn.widgets.Button(label=label, width=42, height=38, margin=(2, 2),
                                           disabled=stone != 0 or not human_turn, css_classes=classes,
                                           stylesheets=[CELL_CSS])
                button.on_click(lambda _, a=a: self.play(a))
                cells.append(button)
            rows.append(pn.Row(*cells, margin=0))
        self.board_pane.objects = rows
        self.status.object = self._status_text()

    def _status_text(self) -> str:
        state = self.state
        if state.done:
            who = html.escape(self._player(state.winner))
            return f"<b>{COLOUR[state.winner]} ({who}) wins</b> after {len(state.moves)} moves."
        who = html.escape(self._player(state.to_play))
        text = f"{COLOUR[state.to_play]} to move ({who}); move {len(state.moves) + 1}."
        if "value" in self.last_info:
            text += f" Last search's value for its side: {self.last_info['value']:+.2f}."
        if self._overlay_values() is not None:
            text += f" Numbers: the last search's {self.overlay} (%)."
        return text

    # ---- store -----------------------------------------------------------------------------------------------

    def _refresh_nets(self) -> None:
        runs = [r for r in self.store.list_runs() if r.algo.startswith("exit-") and r.env == f"hex{self.board_size}"
                and r.status == "finished"]
        options = [UNTRAINED] + [r.id for r in runs]
        self.net_select.options = options
        if self.net_select.value not in options:
            self.net_select.value = UNTRAINED

    def refresh(self) -> None:
        self._refresh_nets()
        results = load_results(self.store.root)
        if not results:
            self.tables.objects = [pn.pane.Markdown(
                "No tournament stored yet: `workbench hex tournament --size 5 --agents uct,puct,pgs,mcs`.")]
            return
        self.tables.objects = [pn.pane.HTML(f"<pre>{html.escape(r.format())}</pre>", css_classes=["wb-hex-table"])
                               for r in results]

    def __panel__(self):
        return self._layout
