"""Running a page's slow work on a thread and applying its result on the page's own event loop."""

from __future__ import annotations

import panel as pn


def on_page(doc, change) -> None:
    """Call ``change()`` (which updates widgets) on the event loop of the browser session ``doc`` (the
    ``pn.state.curdoc`` captured before the worker thread started: a thread has no current document), or right
    here when there is no served session (a notebook, plain Python, a test)."""
    if doc is not None and doc.session_context is not None:
        from panel.io.state import set_curdoc

        with set_curdoc(doc):
            pn.state.execute(change, schedule=True)
    else:
        change()


__all__ = ["on_page"]
