"""The answer buttons and their keyboard shortcuts: a small client-side component that tags every answer with the
id of the assignment on screen, so a key pressed twice before the next pair arrives is dropped."""

from __future__ import annotations

import panel as pn
import param

from workbench.preferences.labels import GRADED_SCALE

# action -> (button text, keys). Keys are KeyboardEvent.key values; the first is shown on the button.
PAIR_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "left": ("Left better", ("1", "ArrowLeft")),
    "right": ("Right better", ("2", "ArrowRight")),
    "equal": ("Equal", ("3", "=")),
    "cant_tell": ("Can't tell", ("4", "c")),
    "skip": ("Skip", ("5", "s")),
}
GRADED_LABELS = GRADED_SCALE  # WebGPT's 7 points; "A" = the left item as shown
RANKING_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ranked": ("Submit ranking", ("Enter",)),
    "cant_tell": ("Can't tell", ("c",)),
    "skip": ("Skip", ("s",)),
}
UNDO_ACTION = ("undo", "Undo last", ("u",))
KEY_NAMES = {"ArrowLeft": "←", "ArrowRight": "→", "Enter": "Enter"}




# ---- the keyboard/button bar (client side) ---------------------------------------------------------

class ChoiceBar(pn.custom.JSComponent):
    """Buttons with their shortcuts; a click or a key sends ``{"action", "assignment_id"}`` to Python.

    The keydown listener is on the document, skips events from text fields, selects and editable elements
    (and repeats / modifier combinations), and is removed when the component is."""

    buttons = param.List(default=[], doc="[{'action': str, 'label': str, 'keys': [str, ...]}, ...]")
    assignment_id = param.Integer(default=-1, doc="The assignment on screen (-1: none).")
    disabled_actions = param.List(default=[], doc="Actions whose buttons are disabled.")

    _esm = """
function isTyping(e) {
  const t = (e.composedPath && e.composedPath()[0]) || e.target;
  if (!t || !t.tagName) return false;
  const tag = t.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select" || t.isContentEditable) return true;
  if (tag === "input") {
    const type = (t.type || "text").toLowerCase();
    return !["checkbox", "radio", "button", "submit", "reset", "range"].includes(type);
  }
  return false;
}

export function render({ model, el }) {
  const bar = document.createElement("div");
  bar.className = "wb-choice-bar";
  bar.style.display = "flex";
  bar.style.flexWrap = "wrap";
  bar.style.gap = "6px";
  el.setAttribute("data-lm-suppress-shortcuts", "true");

  function send(action) {
    model.send_msg({ action: action, assignment_id: model.assignment_id });
  }
  function draw() {
    bar.replaceChildren();
    for (const b of model.buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "wb-choice wb-choice-" + b.action;
      button.dataset.action = b.action;
      button.textContent = b.label;  // text, never HTML
      button.disabled = model.disabled_actions.includes(b.action);
      button.style.padding = "6px 12px";
      button.style.fontSize = "14px";
      button.style.cursor = "pointer";
      button.addEventListener("click", () => send(b.action));
      bar.appendChild(button);
    }
  }
  function onKey(e) {
    const path = (e.composedPath && e.composedPath()) || [];
    if (e.key === "Escape" && isTyping(e) && path[0] && path[0].blur) { path[0].blur(); return; }
    if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || isTyping(e)) return;
    for (const b of model.buttons) {
      if (b.keys.includes(e.key) && !model.disabled_actions.includes(b.action)) {
        e.preventDefault();
        e.stopPropagation();
        send(b.action);
        return;
      }
    }
  }
  document.addEventListener("keydown", onKey);
  model.on("remove", () => document.removeEventListener("keydown", onKey));
  model.on(["buttons", "disabled_actions"], draw);
  draw();
  return bar;
}
"""


def _key_hint(keys: tuple[str, ...]) -> str:
    return " / ".join(KEY_NAMES.get(k, k) for k in keys)


def _buttons(actions: dict[str, tuple[str, tuple[str, ...]]]) -> list[dict]:
    return [{"action": a, "label": f"{text} [{_key_hint(keys)}]", "keys": list(keys)}
            for a, (text, keys) in actions.items()]


def graded_actions() -> dict[str, tuple[str, tuple[str, ...]]]:
    actions = {f"scale:{value}": (label, (str(i + 1),))
               for i, (value, label) in enumerate(zip(range(-3, 4), GRADED_LABELS))}
    actions["cant_tell"] = PAIR_ACTIONS["cant_tell"][0], ("c",)
    actions["skip"] = PAIR_ACTIONS["skip"][0], ("s",)
    return actions


def choice_for_scale(scale: int) -> str:
    """The choice implied by a graded answer as shown (negative = left better)."""
    return "left" if scale < 0 else "right" if scale > 0 else "equal"
