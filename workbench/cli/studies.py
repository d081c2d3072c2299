"""`workbench sweep` and `workbench study list|show` (workbench.studies).

    workbench sweep --name widths --algo ppo --set env=colour_cue --set total_timesteps=4096 \
        --axis width=0.25,0.5,1 --axis seed=0,1,2 [--zip] [--parallel 2]
    workbench sweep --config study.toml [--executor ray --ray-address ADDR --gpus-per-run 1]
    workbench sweep --resume widths          # continue a stored study with its stored spec
    workbench study list
    workbench study show widths
"""

from __future__ import annotations

import json
import sys


def add_parsers(sub) -> None:
    sw = sub.add_parser("sweep", help="run (or continue) a study: a family of runs over config axes")
    sw.add_argument("--config", default=None, metavar="FILE.toml", help="the study as a TOML file")
    sw.add_argument("--resume", default=None, metavar="STUDY", help="continue a stored study with its stored spec")
    sw.add_argument("--name", default=None, help="the study's name (re-running the same name continues it)")
    sw.add_argument("--kind", default=None, help="job kind: train (default) or a registered one")
    sw.add_argument("--algo", default=None, help="the algorithm (kind train; may also be an axis)")
    sw.add_argument("--distribution-mode", default=None, choices=("easy", "hard"))
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a base setting of every run (JSON values), e.g. --set env=colour_cue")
    sw.add_argument("--axis", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="an axis over a setting, e.g. --axis width=0.25,0.5,1 (repeat for more axes)")
    sw.add_argument("--zip", action="store_true", help="zip the axes into a list of runs instead of a grid")
    sw.add_argument("--executor", default="local", choices=("local", "ray"))
    sw.add_argument("--parallel", type=int, default=None, help="runs at a time (local default 1; Ray: by CPUs)")
    sw.add_argument("--threads", type=int, default=None, help="CPU threads per local run (default: cores / K)")
    sw.add_argument("--ray-address", default=None, help="a Ray cluster (default: start a local Ray runtime)")
    sw.add_argument("--ray-num-cpus", type=int, default=None, help="CPUs of the local Ray runtime")
    sw.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray resources of each run")
    sw.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray resources of each run")
    sw.add_argument("--dry-run", action="store_true", help="validate and list the runs; start nothing")
    sw.set_defaults(handler=cmd_sweep)

    st = sub.add_parser("study", help="list studies, or show one study's runs and their status")
    ssub = st.add_subparsers(dest="study_command", required=True)
    ssub.add_parser("list", help="every study in the store").set_defaults(handler=cmd_study_list)
    sh = ssub.add_parser("show", help="a study's runs with their axis values, status and error")
    sh.add_argument("study")
    sh.set_defaults(handler=cmd_study_show)


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def spec_from_args(args):
    from workbench.studies.spec import StudySpec, parse_axis
    from workbench.studies.sweep import stored_spec

    sources = [x for x in (args.config, args.resume) if x]
    if len(sources) > 1:
        raise ValueError("give --config or --resume, not both")
    flags = any((args.set, args.axis, args.kind, args.algo, args.distribution_mode, args.zip))
    if args.resume:
        if flags or args.name:
            raise ValueError("--resume continues a stored study as it was defined; give no other study settings")
        return stored_spec(args.store_root, args.resume)
    base, axes = {}, {}
    for pair in args.set:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        base[key.strip()] = _parse_value(raw)
    for text in args.axis:
        key, values = parse_axis(text)
        if key in axes:
            raise ValueError(f"axis {key!r} is given twice")
        axes[key] = values
    fields = {k: v for k, v in (("kind", args.kind), ("algo", args.algo),
                                ("distribution_mode", args.distribution_mode)) if v is not None}
    if args.zip:
        fields["mode"] = "list"
    if args.config:
        spec = StudySpec.from_toml(args.config, name=args.name, **fields)
        spec.base.update(base)
        spec.axes.update(axes)
        return spec.validate()
    if not args.name:
        raise ValueError("a study needs --name (or --config FILE.toml, or --resume STUDY)")
    return StudySpec(name=args.name, base=base, axes=axes, **fields).validate()


def make_executor(args, store_root):
    from workbench.studies.executors import LocalExecutor, RayExecutor

    if args.executor == "ray":
        return RayExecutor(store_root, address=args.ray_address, parallel=args.parallel,
                           cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                           num_cpus=args.ray_num_cpus)
    if args.ray_address:
        raise ValueError("--ray-address needs --executor ray")
    return LocalExecutor(store_root, parallel=args.parallel or 1, threads=args.threads)


def cmd_sweep(args, store) -> int:
    from workbench.studies.sweep import run_study, validate_study

    args.store_root = store.root
    spec = spec_from_args(args)
    if args.dry_run:
        validate_study(spec)
        for point in spec.axis_points():
            print(spec.run_name(point))
        return 0
    report = run_study(spec, store.root, make_executor(args, store.root), log=lambda m: print(m, file=sys.stderr))
    for p in report.points:
        print(f"{p.status:9} {p.run_id or '-':42} {p.run_name}")
    return 0 if report.status == "finished" else 1


def cmd_study_list(args, store) -> None:
    from workbench.storage.studies import StudyStore

    studies = StudyStore(runs=store)
    infos = studies.list_studies()
    if not infos:
        print("no studies yet: start one with `workbench sweep`")
        return
    print(f"{'study':32} {'kind':8} {'status':9} {'runs':>5} {'finished':>8} {'failed':>6}")
    for s in infos:
        points = studies.points(s.name)
        done = sum(p.status == "finished" for p in points)
        failed = sum(p.status == "failed" for p in points)
        print(f"{s.name:32} {s.kind:8} {_study_status(studies, s):9} {len(points):>5} {done:>8} {failed:>6}")


def _study_status(studies, info) -> str:
    from workbench.storage.runs import process_alive

    if info.status == "running" and not process_alive(info.pid):
        return "interrupted"  # its driver was killed: `workbench sweep --resume` continues it
    return info.status


def cmd_study_show(args, store) -> None:
    from workbench.storage.studies import StudyStore

    studies = StudyStore(runs=store)
    info = studies.get(args.study)
    points = studies.points(args.study)
    axes = list(dict.fromkeys(k for p in points for k in p.point))
    print(f"study {info.name!r} ({info.kind}, {_study_status(studies, info)}): {len(points)} runs over "
          f"{', '.join(axes)}")
    print("  ".join(f"{a:>10}" for a in axes) + f"  {'status':9} run")
    for p in points:
        values = "  ".join(f"{json.dumps(p.point.get(a)):>10}" for a in axes)
        print(f"{values}  {p.status:9} {p.run_id or '-'}")
        if p.error:
            print("    error: " + p.error.strip().replace("\n", "\n    "))

