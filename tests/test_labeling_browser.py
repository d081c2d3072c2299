"""The labeling view in a real browser (Playwright + Debian's Chromium) against a served dashboard:

(a) label several pairs with the KEYBOARD (keys ignored while typing a comment), undo one, check the store;
(b) text containing <script> and <img onerror> is shown as text and never runs;
(c) with basic auth and --admins: a labeler sees only the labeling view and nobody else's labels, an admin
    sees every tab, and a request without a login cannot open a session or write a label.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from test_dashboard import free_port, stop_process, wait_for_http_200

from workbench.preferences.labels import LabelStore

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
XSS = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'
TIMEOUT_MS = 60_000

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent")]


def serve(store_root: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "widgets.app", "--port", str(port), "--store", str(store_root),
                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=90, proc=proc)
    return proc, port


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_labeling(page, port: int, labeler: str | None) -> None:
    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
    page.get_by_text("Labeling", exact=True).first.click(timeout=TIMEOUT_MS)
    if labeler is not None:
        box = page.locator(".wb-labeler-name input").first
        box.fill(labeler, timeout=TIMEOUT_MS)
        box.press("Enter")      # sends the value
        box.press("Escape")     # leave the text box: keys are shortcuts again


def shown_prompt(page) -> str:
    return page.locator(".wb-prompt .wb-plain").first.inner_text(timeout=TIMEOUT_MS)


def press_and_wait(page, key: str, previous_prompt: str) -> str:
    """Press a shortcut and wait until the page shows another item (the label was committed first)."""
    from playwright.sync_api import expect

    page.keyboard.press(key)
    # (Playwright's locators pierce Panel's shadow roots)
    expect(page.locator(".wb-prompt .wb-plain").first).not_to_have_text(previous_prompt, timeout=TIMEOUT_MS)
    return shown_prompt(page)


def test_label_with_the_keyboard_and_undo(tmp_path, browser):
    root = tmp_path / "store"
    store = LabelStore(root)
    store.create_campaign("kb", "text_pair", flags=("offensive",))
    store.add_items("kb", [{"prompt": f"prompt {i}", "a": f"answer A{i}", "b": f"answer B{i}"} for i in range(6)])
    server, port = serve(root)
    try:
        assert open_session_without_login(port) is None  # (control for test_roles_with_basic_auth)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        open_labeling(page, port, "kim")
        page.locator(".wb-choice-left").first.wait_for(timeout=TIMEOUT_MS)
        assert "Left better [1 / ←]" in page.locator(".wb-choice-left").first.inner_text()

        expected = []  # (item prompt, choice, canonical preferred) from what the page showed
        prompt = shown_prompt(page)

        def record(choice):
            left = page.locator(".wb-left .wb-plain").first.inner_text()
            swapped = left.startswith("answer B")
            canonical = {"left": "b" if swapped else "a", "right": "a" if swapped else "b"}.get(choice, choice)
            expected.append((prompt, choice, canonical))

        record("left")
        prompt = press_and_wait(page, "1", prompt)
        record("right")
        prompt = press_and_wait(page, "ArrowRight", prompt)

        # Typing in the comment box does not label anything; Escape leaves it, then "3" = equal.
        comment = page.locator(".wb-comment textarea").first
        comment.click()
        page.keyboard.type("1 2 s u")
        time.sleep(0.5)  # (nothing to wait for: asserting that nothing happens)
        assert len(store.labels("kb")) == 2 and shown_prompt(page) == prompt
        page.keyboard.press("Escape")
        record("equal")
        third = prompt
        prompt = press_and_wait(page, "3", prompt)
        wait_until(lambda: len(store.labels("kb")) == 3, 30, "the third label")
        assert store.labels("kb")[-1].comment == "1 2 s u"

        # Undo: the third item comes back (same order), answered "skip" this time.
        prompt = press_and_wait(page, "u", prompt)
        assert prompt == third
        expected.pop()
        record("skip")
        prompt = press_and_wait(page, "s", prompt)
        record("cant_tell")
        press_and_wait(page, "4", prompt)

        labels = store.labels("kb")
        got = [(lab.payload["prompt"], lab.choice, lab.preferred) for lab in labels]
        assert got == expected
        assert all(lab.labeler == "kim" and lab.seconds > 0 for lab in labels)
        assert store.progress("kb", "kim")["labeled"] == 4
        page.locator(".wb-progress").first.wait_for(timeout=TIMEOUT_MS)
        assert "Labeled 4 / 6 assigned" in page.locator(".wb-progress").first.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "labeling_keyboard.png"), full_page=True)
    finally:
        stop_process(server)


def test_script_in_text_is_shown_and_never_runs(tmp_path, browser):
    root = tmp_path / "store"
    store = LabelStore(root)
    store.create_campaign("xss", "text_pair", guidelines_md=f"Rules {XSS} {IMG} [x](javascript:window.__xss=3)",
                          flags=(XSS,))
    store.add_items("xss", [{"prompt": XSS, "a": IMG, "b": IMG + " " + XSS}])
    server, port = serve(root)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_labeling(page, port, XSS)
        page.locator(".wb-prompt").first.wait_for(timeout=TIMEOUT_MS)
        page.get_by_text("Guidelines").first.click()
        assert shown_prompt(page) == XSS  # the literal text is visible
        assert page.get_by_text(XSS).first.is_visible()
        assert page.locator(".wb-left .wb-plain").first.inner_text() in (IMG, IMG + " " + XSS)
        assert page.get_by_text("javascript:window.__xss=3").count() >= 1  # not a link
        page.keyboard.press("1")
        wait_until(lambda: store.labels("xss"), 30, "the label")
        page.locator(".wb-done").first.wait_for(timeout=TIMEOUT_MS)
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert page.locator("img[src=x]").count() == 0  # (Playwright's CSS selectors pierce shadow roots)
        assert store.labels("xss")[0].labeler == XSS
    finally:
        stop_process(server)


def open_session_without_login(port: int) -> BaseException | None:
    """Try to open a Bokeh session (the websocket a page uses) with no login cookie; returns the error.
    In a thread of its own: Playwright's event loop runs in this one."""
    import panel.models.tabulator  # noqa: F401  (registers the model types the session holds)
    from bokeh.client import pull_session

    outcome: list[BaseException | None] = []

    def attempt():
        try:
            pull_session(url=f"http://127.0.0.1:{port}/").close()
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 (returned: the test checks its type)
            outcome.append(e)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(120)
    return outcome[0] if outcome else TimeoutError("no answer")


def login(browser, port: int, user: str, password: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{port}/login", wait_until="domcontentloaded")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return page


def test_roles_with_basic_auth(tmp_path, browser):
    root = tmp_path / "store"
    store = LabelStore(root)
    store.create_campaign("auth", "text_pair", overlap=2)
    store.add_items("auth", [{"prompt": f"prompt {i}", "a": f"A{i}", "b": f"B{i}"} for i in range(3)])
    other = store.next_item("auth", "lab2")
    store.submit(other.id, "lab2", "left", comment="lab2-secret-comment")
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"admin": "pw-admin", "lab1": "pw-lab1", "lab2": "pw-lab2"}))
    server, port = serve(root, "--basic-auth", str(credentials), "--admins", "admin",
                         "--cookie-secret", "test-secret-" + "x" * 20)
    try:
        # No login: the page is the login form, and no session (websocket) can be opened.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            body = response.read().decode()
            assert response.url.startswith(f"http://127.0.0.1:{port}/login")
            assert 'name="password"' in body and "wb-comparison" not in body
        assert isinstance(open_session_without_login(port), OSError)  # bokeh: "failed to connect"
        assert store.progress("auth")["assigned"] == 0 and len(store.labels("auth")) == 1

        # A labeler: only the labeling view, own identity and progress, nobody else's labels.
        page = login(browser, port, "lab1", "pw-lab1")
        page.locator(".wb-labeler-view").first.wait_for(timeout=TIMEOUT_MS)
        page.locator(".wb-choice-left").first.wait_for(timeout=TIMEOUT_MS)
        assert "lab1" in page.locator(".wb-labeler").first.inner_text()
        for hidden in ("Runs", "Monitor", "Statistics", "New campaign", "Calibration"):
            assert page.get_by_text(hidden, exact=True).count() == 0, hidden
        text = page.evaluate("""() => { const out = [];
            const walk = n => { out.push(n.textContent || ''); for (const c of n.querySelectorAll('*'))
              if (c.shadowRoot) walk(c.shadowRoot); }; walk(document); return out.join(' '); }""")
        assert "lab2" not in text and "secret" not in text
        prompt = shown_prompt(page)
        press_and_wait(page, "2", prompt)
        wait_until(lambda: len(store.labels("auth")) == 2, 30, "lab1's label")
        assert [lab.labeler for lab in store.labels("auth")] == ["lab2", "lab1"]
        assert "Labeled 1 / 3 assigned" in page.locator(".wb-progress").first.inner_text()

        # The admin sees every tab and the statistics of every labeler.
        admin = login(browser, port, "admin", "pw-admin")
        admin.get_by_text("Runs", exact=True).first.wait_for(timeout=TIMEOUT_MS)
        admin.get_by_text("Labeling", exact=True).first.click()
        admin.get_by_text("Statistics", exact=True).first.click(timeout=TIMEOUT_MS)
        admin.get_by_text("Compute statistics").first.click(timeout=TIMEOUT_MS)
        per_labeler = admin.locator(".wb-stats table").nth(1)
        per_labeler.wait_for(timeout=TIMEOUT_MS)
        stats = per_labeler.inner_text()
        assert "lab1" in stats and "lab2" in stats
    finally:
        stop_process(server)
