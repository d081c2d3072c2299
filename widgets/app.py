"""The workbench dashboard: a Panel app with one tab per view of the run store.

Serve it with ``workbench-dashboard`` (or ``python -m widgets.app``)::

    workbench-dashboard --store runs --port 5006          # http://127.0.0.1:5006

It listens on 127.0.0.1 by default. Listening on any other address (e.g. ``0.0.0.0``) is refused
unless logins are required (``--basic-auth`` or ``--oauth-provider``): the dashboard shows every
run's config and, as later tabs arrive, controls runs, so it must not be open to a network.
For a remote machine, an SSH tunnel to the default address needs no login at all:
``ssh -L 5006:127.0.0.1:5006 host``.

Roles: with logins and ``--admins alice,bob``, the admins see every tab and every other logged-in user is a
labeler who sees only the labeling view (docs/labeling.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import panel as pn

from widgets.calibration_tab import CalibrationTab
from widgets.demonstrations_tab import DemonstrationsTab
from widgets.hex_tab import HexTab
from widgets.labeling import LabelingTab
from widgets.overoptimization_view import OveroptimizationView
from widgets.procgen_player import ProcgenPlayer
from widgets.rollouts_tab import RolloutsTab
from widgets.runs_table import RunsTable
from widgets.safety_tab import SafetyTab
from widgets.studies_tab import StudiesTab
from widgets.training_monitor import TrainingMonitor
from workbench.storage.runs import RunStore, default_root

TITLE = "RL Workbench"

# The dashboard's tabs, in order: (title, factory). A factory takes ``store_root=`` and returns
# anything Panel can display. Adding a tab is one line here, e.g. ("Curves", CurvesView).
TABS: list[tuple[str, Callable[..., object]]] = [
    ("Runs", RunsTable),
    ("Monitor", TrainingMonitor),
    ("Rollouts", RolloutsTab),
    ("Labeling", LabelingTab),
    ("Calibration", CalibrationTab),
    ("Studies", StudiesTab),
    ("Overoptimization", OveroptimizationView),
    ("Safety", SafetyTab),
    ("Hex", HexTab),
    ("Play", ProcgenPlayer),
    ("Demonstrations", DemonstrationsTab),
]

# Panel extensions the tabs need (their JavaScript must be on the page before a tab is opened).
EXTENSIONS: list[str] = ["tabulator", "plotly"]

LOOPBACK_NAMES = ("localhost",)

# Packages whose components the page loads resources (CSS, JS) of through /components/<module>/...: Panel's and
# Bokeh's own, and this dashboard's. Panel's handler would import any module named in the URL; this one answers
# only for these packages, and only for modules already imported (a request never imports anything).
OWN_PACKAGES = ("panel", "bokeh", "widgets")


def component_module_allowed(module: str) -> bool:
    return module.partition(".")[0] in OWN_PACKAGES and module in sys.modules


def guarded_component_routes() -> list[tuple]:
    """A /components/ route placed before Panel's: refuses (403) resources of modules that are not the
    dashboard's own, then lets Panel's handler serve the rest."""
    from panel.io.resources import COMPONENT_PATH
    from panel.io.server import ComponentResourceHandler
    from tornado.web import HTTPError

    class OwnComponentResourceHandler(ComponentResourceHandler):
        def parse_url_path(self, path: str) -> str:
            if not component_module_allowed(path.split("/", 1)[0]):
                raise HTTPError(403, "not a component of this dashboard")
            return super().parse_url_path(path)

    return [(f"/{COMPONENT_PATH}(.*)", OwnComponentResourceHandler, {})]


def serve_stylesheets_locally(doc) -> None:
    """Components' stylesheets from this server, never Panel's CDN (the page must work offline).

    Panel points a model's stylesheets at its CDN unless the document already knows the server's resource path
    (``dist_url``), which it learns only when the page is rendered; models made before that are rewritten then,
    but models made later (a tab opened for the first time, a refreshed pane) kept the CDN address, and an
    offline browser waited on it. Setting the path when the session starts makes every model local."""
    from panel.io.resources import LOCAL_DIST

    rel = pn.state.rel_path
    doc._template_variables.setdefault("dist_url", f"{rel}/{LOCAL_DIST}" if rel else LOCAL_DIST)


def build_app(store_root: str | os.PathLike | None = None, *, require_login: bool = False,
              admins: frozenset[str] | None = None) -> pn.template.BootstrapTemplate:
    """The dashboard page: a title bar and the registered tabs, reading the store at ``store_root``
    (None: $WORKBENCH_HOME, else ./runs). Build one per browser session.

    Roles (served with logins, ``require_login=True``; see docs/labeling.md): a session without a logged-in
    user gets no tabs at all; with ``admins`` given, a logged-in user not in it is a *labeler* and sees only
    the labeling view (:class:`widgets.labeling.LabelingTab` with ``role="labeler"``: their own assignments
    and progress, nobody else's labels) and the Procgen player (labelers may play); admins (every logged-in user when ``admins`` is None) see every tab.
    """
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.extension(*EXTENSIONS)  # served: load the tabs' JavaScript with the page
        serve_stylesheets_locally(doc)
    if require_login:
        user = pn.state.user
        if not user:  # Panel's login handler should have stopped this request; refuse anyway
            return pn.template.BootstrapTemplate(title=TITLE, main=[pn.pane.HTML(
                "Please log in.", css_classes=["wb-login-required"])])
        if admins is not None and user not in admins:
            view = LabelingTab(store_root=store_root, user=user, role="labeler", require_login=True)
            view = pn.Tabs(("Labeling", view), ("Play", ProcgenPlayer(store_root=store_root, user=user)), dynamic=True)
            return pn.template.BootstrapTemplate(title=f"{TITLE} · labeling", main=[view])
    tabs = pn.Tabs(
        *[(title, factory(store_root=store_root)) for title, factory in TABS],
        dynamic=True,  # a tab is rendered when first opened
        sizing_mode="stretch_width",
    )
    return pn.template.BootstrapTemplate(title=TITLE, main=[tabs])


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, "localhost")."""
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def websocket_origins(address: str, port: int, extra: list[str]) -> list[str]:
    """host:port origins whose pages may open the dashboard's websocket.

    localhost and 127.0.0.1 always; for a non-loopback address also the address itself and this
    machine's host names (how other machines reach it); plus any --allow-websocket-origin.
    (Bokeh cannot match IPv6 literals: browse an IPv6 address through a host name.)
    """
    hosts = {"localhost", "127.0.0.1"}
    if not is_loopback(address):
        hosts.update({address, socket.gethostname(), socket.getfqdn()})
    return sorted(f"{host}:{port}" for host in hosts if host and ":" not in host) + list(extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench-dashboard",
        description=f"Serve the {TITLE} dashboard (runs, metrics) in the browser.",
    )
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only). Any other "
                             "address needs --basic-auth or --oauth-provider.")
    parser.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006)")
    parser.add_argument("--store", default=None,
                        help="run store directory (default $WORKBENCH_HOME, else ./runs)")
    parser.add_argument("--basic-auth", metavar="PASSWORD_OR_FILE", default=None,
                        help="require a login: a password (any user name), or a JSON file mapping user "
                             "names to passwords. Prefer the file: a password on the command line is "
                             "visible to other users in `ps`.")
    parser.add_argument("--admins", default=None, metavar="USER,USER",
                        help="with logins: the users who see every tab (campaigns, statistics, runs); every "
                             "other logged-in user is a labeler and sees only the labeling view. Default: "
                             "every logged-in user is an admin. With --basic-auth it needs a credentials file.")
    parser.add_argument("--oauth-provider", default=None,
                        help="require a login through an OAuth provider (e.g. github, google, azure)")
    parser.add_argument("--oauth-key", default=None, help="OAuth client id (or $PANEL_OAUTH_KEY)")
    parser.add_argument("--oauth-secret", default=None, help="OAuth client secret (or $PANEL_OAUTH_SECRET)")
    parser.add_argument("--oauth-redirect-uri", default=None, help="OAuth redirect URI, if not the default")
    parser.add_argument("--cookie-secret", default=None,
                        help="secret that signs login cookies (default $PANEL_COOKIE_SECRET, else a random "
                             "one: logins then end when the server restarts)")
    parser.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate")
    parser.add_argument("--ssl-keyfile", default=None, help="private key of --ssl-certfile")
    parser.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST:PORT",
                        help="another host:port browsers use to reach the dashboard (e.g. behind a proxy); "
                             "repeatable")
    parser.add_argument("--show", action=argparse.BooleanOptionalAction, default=False,
                        help="open a browser tab (default: --no-show)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        parser.error("--ssl-certfile and --ssl-keyfile go together: give both or neither")
    authenticated = bool(args.basic_auth or args.oauth_provider)
    if not is_loopback(args.address) and not authenticated:
        parser.error(
            f"refusing to serve on {args.address!r} without authentication: anyone who can reach it "
            "could read every run. Add --basic-auth PASSWORD_OR_FILE (or --oauth-provider with "
            "--oauth-key/--oauth-secret), or keep the default --address 127.0.0.1 and use an SSH "
            "tunnel (ssh -L 5006:127.0.0.1:5006 HOST)."
        )

    admins = None
    if args.admins is not None:
        admins = frozenset(name.strip() for name in args.admins.split(",") if name.strip())
        if not authenticated:
            parser.error("--admins needs logins (--basic-auth CREDENTIALS.json or --oauth-provider): without "
                         "them there is no user to give a role to")
        if not admins:
            parser.error("--admins needs at least one user name, e.g. --admins alice,bob")
        if args.basic_auth and not os.path.isfile(args.basic_auth):
            parser.error("--admins with --basic-auth needs a JSON credentials file (one password per user): "
                         "with a single shared password anyone could log in under an admin's name")

    for origin in args.allow_websocket_origin:
        host, _, origin_port = origin.rpartition(":")
        if not host or ":" in host or not origin_port.isdigit():
            parser.error(f"--allow-websocket-origin must be HOST:PORT (e.g. myhost.example.org:5006), got {origin!r}")

    store_root = Path(args.store).expanduser() if args.store else default_root()
    store_root = store_root.absolute()
    try:  # open it now, so a bad store fails here rather than in every browser session
        RunStore(store_root).close()
    except (OSError, sqlite3.Error, RuntimeError) as e:
        parser.error(f"cannot open the run store at {store_root}: {e}")

    auth: dict = {}
    if authenticated:
        # Login cookies are signed; Panel needs a secret for that.
        auth["cookie_secret"] = (
            args.cookie_secret or os.environ.get("PANEL_COOKIE_SECRET") or secrets.token_urlsafe(32)
        )
        if args.basic_auth:
            auth["basic_auth"] = args.basic_auth
        else:
            auth.update(oauth_provider=args.oauth_provider, oauth_key=args.oauth_key,
                        oauth_secret=args.oauth_secret, oauth_redirect_uri=args.oauth_redirect_uri)
        if admins is None:
            print("note: every logged-in user sees every tab and the labels' statistics; give --admins USER,... "
                  "to make the other users labelers (see docs/labeling.md)", file=sys.stderr)
        if not is_loopback(args.address) and args.ssl_certfile is None:
            print("warning: logins over plain HTTP send passwords and cookies unencrypted; "
                  "use --ssl-certfile/--ssl-keyfile or a TLS proxy", file=sys.stderr)
    if args.ssl_certfile:
        auth.update(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)

    print(f"{TITLE}: run store {store_root}", flush=True)
    pn.serve(
        {"/": lambda: build_app(store_root, require_login=authenticated, admins=admins)},
        address=args.address,
        port=args.port,
        websocket_origin=websocket_origins(args.address, args.port, args.allow_websocket_origin),
        show=args.show,
        title=TITLE,
        extra_patterns=guarded_component_routes(),
        start=True,
        verbose=True,
        **auth,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
