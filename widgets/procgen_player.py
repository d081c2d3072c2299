"""Play Procgen in the browser: the game runs on the server (workbench.demonstrations.scripted.HumanRecorder),
the page shows its 512x512 render at the game's speed (15 frames/s, adjustable) and sends the keys held down;
every finished episode is saved as a recorded episode marked "human", with the level seed and the player's
login when logins are on. Keyboard: arrows move (two arrows held = a diagonal), D A W S Q E are the games'
extra buttons, as procgen's own interactive player; the mapping to procgen's 15 actions is shown on the page.
"""

from __future__ import annotations

import html
import io

import panel as pn
import param
from PIL import Image

from workbench.episodes.rollouts import ACTION_NAMES, BUTTON_COMBOS, HIRES_FPS
from workbench.rl.envs import GAMES

# KeyboardEvent.key -> procgen button
KEY_BUTTONS = {"ArrowLeft": "LEFT", "ArrowRight": "RIGHT", "ArrowUp": "UP", "ArrowDown": "DOWN",
               "d": "D", "a": "A", "w": "W", "s": "S", "q": "Q", "e": "E"}
NOOP = BUTTON_COMBOS.index(())
_COMBO_ACTION = {frozenset(combo): i for i, combo in enumerate(BUTTON_COMBOS)}


def action_for_keys(keys) -> int:
    """Procgen's action for the keys held: the action whose button combination is exactly the held buttons;
    otherwise the arrows alone (a letter held with an arrow), otherwise NOOP (e.g. LEFT and RIGHT together)."""
    buttons = frozenset(KEY_BUTTONS[k] for k in keys if k in KEY_BUTTONS)
    if buttons in _COMBO_ACTION:
        return _COMBO_ACTION[buttons]
    arrows = buttons & {"LEFT", "RIGHT", "UP", "DOWN"}
    return _COMBO_ACTION.get(arrows, NOOP)


def mapping_html() -> str:
    """The key -> action table shown on the page."""
    key_of = {b: k.replace("Arrow", "") for k, b in KEY_BUTTONS.items()}
    rows = "".join(f"<tr><td>{i}</td><td>{html.escape(name)}</td><td>{html.escape(' + '.join(key_of[b] for b in combo) or '(none)')}</td></tr>"
                   for i, (name, combo) in enumerate(zip(ACTION_NAMES, BUTTON_COMBOS)))
    return ("<table class='wb-player-keys'><tr><th>action</th><th>procgen</th><th>keys</th></tr>" + rows + "</table>")


class KeyPad(pn.custom.JSComponent):
    """Sends the set of game keys held down (`{"keys": [...]}`) whenever it changes. The listeners are on the
    document, skip text fields, and are removed with the component."""

    _esm = """
const GAME_KEYS = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "d", "a", "w", "s", "q", "e"];
function isTyping(e) {
  const t = (e.composedPath && e.composedPath()[0]) || e.target;
  if (!t || !t.tagName) return false;
  const tag = t.tagName.toLowerCase();
  return tag === "input" || tag === "textarea" || tag === "select" || t.isContentEditable;
}
export function render({ model, el }) {
  const held = new Set();
  const info = document.createElement("div");
  info.className = "wb-keypad";
  info.textContent = "keys: (none)";
  function send() {
    const keys = Array.from(held);
    info.textContent = "keys: " + (keys.join(" + ") || "(none)");
    model.send_msg({ keys: keys });
  }
  function onDown(e) {
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    // el.offsetParent is null while the player is on a hidden tab: its keys then belong to the other views
    if (!GAME_KEYS.includes(k) || isTyping(e) || e.ctrlKey || e.metaKey || e.altKey || !el.offsetParent) return;
    e.preventDefault();
    if (!held.has(k)) { held.add(k); send(); }
  }
  function onUp(e) {
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (held.delete(k)) { e.preventDefault(); send(); }
  }
  function onBlur() { if (held.size) { held.clear(); send(); } }
  document.addEventListener("keydown", onDown);
  document.addEventListener("keyup", onUp);
  window.addEventListener("blur", onBlur);
  model.on("remove", () => {
    document.removeEventListener("keydown", onDown);
    document.removeEventListener("keyup", onUp);
    window.removeEventListener("blur", onBlur);
  });
  return info;
}
"""

    def __init__(self, on_keys, **params):
        super().__init__(**params)
        self._on_keys = on_keys

    def _handle_msg(self, msg) -> None:
        keys = msg.get("keys") if isinstance(msg, dict) else None
        if isinstance(keys, list):
            self._on_keys([str(k) for k in keys[:10]])


class ProcgenPlayer(pn.viewable.Viewer):
    """A Procgen game played in the browser; finished episodes land in the store as human demonstrations.

    Python API (notebooks, tests, a scripted demonstrator): `press(keys)` sets the held keys, `tick()` plays one
    frame, `restart()` starts the level over; `saved` lists the ids of the episodes recorded so far."""

    store_root = param.Parameter(default=None, doc="The run store's root (None: $WORKBENCH_HOME or ./runs).")
    env = param.Selector(default="coinrun", objects=list(GAMES))
    level_seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="The level played (its seed).")
    distribution_mode = param.Selector(default="easy", objects=["easy", "hard"])
    fps = param.Integer(default=HIRES_FPS, bounds=(1, 60), doc="Frames per second (the game's own speed: 15).")
    paused = param.Boolean(default=False)
    max_steps = param.Integer(default=None, allow_None=True, bounds=(1, None),
                              doc="Save and restart after this many steps (None: play each episode to its end).")
    user = param.String(default=None, allow_None=True, doc="The player's login (default: pn.state.user); labeler "
                                                           "accounts play too (widgets/app.py)")
    autoplay = param.Boolean(default=True, doc="Advance on a timer when served (off: only tick()).")

    def __init__(self, **params):
        super().__init__(**params)
        if self.user is None:
            self.user = pn.state.user or None  # None when logins are off
        self.saved: list[str] = []
        self._keys: list[str] = []
        self._recorder = None
        self._image = pn.pane.JPG(None, width=512, height=512, css_classes=["wb-player-screen"])
        self._status = pn.pane.HTML("", css_classes=["wb-player-status"])
        self._keypad = KeyPad(self.press)
        restart = pn.widgets.Button(label="Restart level", color="warning", css_classes=["wb-player-restart"])
        restart.on_click(lambda _: self.restart())
        self._controls = pn.Column(
            pn.widgets.Select.from_param(self.param.env, name="Game", width=240),
            pn.widgets.IntInput.from_param(self.param.level_seed, name="Level (seed)", width=240),
            pn.widgets.Select.from_param(self.param.distribution_mode, name="Mode", width=240),
            pn.widgets.IntSlider.from_param(self.param.fps, name="Frames per second", width=240),
            pn.widgets.Toggle.from_param(self.param.paused, name="Pause", width=240),
            restart, self._keypad, self._status, width=270)
        self._layout = pn.Row(self._image, self._controls, pn.pane.HTML(mapping_html(), width=260, css_classes=["wb-player-mapping"]))
        self._callback = None
        self.restart()

    # ---- the game --------------------------------------------------------------------------------------
    @param.depends("env", "level_seed", "distribution_mode", "max_steps", watch=True)
    def restart(self) -> None:
        """Start the chosen level over; the episode in progress is dropped (only finished episodes are saved)."""
        from workbench.demonstrations.scripted import HumanRecorder

        if self._recorder is not None:
            self._recorder.close()
        self._recorder = HumanRecorder(self.env, self.level_seed, distribution_mode=self.distribution_mode,
                                       store_root=self.store_root, login=self.user, max_steps=self.max_steps)
        self._show()

    def press(self, keys) -> None:
        """The keys held down now (KeyboardEvent.key values); they apply from the next frame."""
        self._keys = list(keys)

    @property
    def action(self) -> int:
        return action_for_keys(self._keys)

    def tick(self) -> str | None:
        """Play one frame with the held keys; returns the saved episode's id when the episode ended."""
        if self.paused:
            return None
        episode_id = self._recorder.step(self.action)
        if episode_id is not None:
            self.saved.append(episode_id)
        self._show(episode_id)
        return episode_id

    def _show(self, saved: str | None = None) -> None:
        buffer = io.BytesIO()
        Image.fromarray(self._recorder.render()).save(buffer, format="JPEG", quality=85)
        self._image.object = buffer.getvalue()
        player = html.escape(self.user) if self.user else "(no login)"
        note = f" · saved <code>{html.escape(saved)}</code>" if saved else ""
        self._status.object = (f"<div>player {player} · {html.escape(self.env)} level {self.level_seed}</div>"
                               f"<div class='wb-player-steps'>step {self._recorder.steps} · return "
                               f"{self._recorder.episode_return:g} · action {html.escape(ACTION_NAMES[self.action])}</div>"
                               f"<div class='wb-player-saved' data-count='{len(self.saved)}'>episodes saved: "
                               f"{len(self.saved)}{note}</div>")

    # ---- the timer -------------------------------------------------------------------------------------
    @param.depends("fps", watch=True)
    def _set_period(self) -> None:
        if self._callback is not None:
            self._callback.period = int(1000 / self.fps)

    def _start_timer(self) -> None:
        if self.autoplay and self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.tick, period=int(1000 / self.fps))

    def __panel__(self):
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self._start_timer)
        return self._layout

    def close(self) -> None:
        if self._callback is not None:
            self._callback.stop()
        if self._recorder is not None:
            self._recorder.close()


__all__ = ["KEY_BUTTONS", "KeyPad", "ProcgenPlayer", "action_for_keys", "mapping_html"]
