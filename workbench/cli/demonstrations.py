"""`workbench bc` and `workbench demos ...`: demonstration sets and behavioural cloning. See docs/demonstrations.md.

    workbench demos list
    workbench demos create NAME [EPISODE ...] [--human] [--env ENV] [--description TEXT]
    workbench demos show NAME
    workbench demos export NAME FILE.npz         workbench demos import FILE.npz [--name NAME]
    workbench demos export NAME --format minari --out DIR --dataset-id workbench/coinrun/human-v0
    workbench bc --set-name NAME --env ENV [--updates N] [--set KEY=VALUE ...]          (prints the run id)
    workbench bc-finetune BC_RUN [--algo ppo|ppg] [--kl-coef B] [--timesteps N] [--set KEY=VALUE ...]
    workbench track score TRACK RUN [--env-budget N] [--episodes N]
"""

from __future__ import annotations

import json


def add_parsers(sub) -> None:
    demos = sub.add_parser("demos", help="demonstration sets: list, create, show, export, import")
    dsub = demos.add_subparsers(dest="demos_command", required=True)
    dsub.add_parser("list", help="every set with its episode count").set_defaults(handler=cmd_list)
    create = dsub.add_parser("create", help="a named set of recorded episodes (ids, or every human episode)")
    create.add_argument("name")
    create.add_argument("episodes", nargs="*", help="episode ids (workbench rollouts lists them)")
    create.add_argument("--human", action="store_true", help="add every episode people played (of --env)")
    create.add_argument("--env", default=None)
    create.add_argument("--description", default="")
    create.set_defaults(handler=cmd_create)
    show = dsub.add_parser("show", help="a set's episodes")
    show.add_argument("name")
    show.set_defaults(handler=cmd_show)
    export = dsub.add_parser("export", help="write a set to a .npz file, or as a Minari dataset "
                                            "(docs/demonstrations.md)")
    export.add_argument("name")
    export.add_argument("file", nargs="?", default=None, help="the .npz file (--format npz)")
    export.add_argument("--format", default="npz", choices=("npz", "minari"))
    export.add_argument("--out", default=None, help="--format minari: the folder the dataset goes under")
    export.add_argument("--dataset-id", default=None, help="--format minari: e.g. workbench/coinrun/human-v0")
    export.set_defaults(handler=cmd_export)
    imp = dsub.add_parser("import", help="read a .npz demonstration file into the store as a set")
    imp.add_argument("file")
    imp.add_argument("--name", default=None)
    imp.set_defaults(handler=cmd_import)

    bc = sub.add_parser("bc", help="behavioural cloning of the IMPALA policy on a demonstration set")
    bc.add_argument("--set-name", required=True, dest="demo_set", help="the demonstration set")
    bc.add_argument("--env", required=True)
    bc.add_argument("--updates", type=int, default=None)
    bc.add_argument("--width", type=float, default=None)
    bc.add_argument("--device", default="auto")
    bc.add_argument("--name", default=None)
    bc.add_argument("--no-progress", action="store_true")
    bc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any BCConfig field (JSON)")
    bc.set_defaults(handler=cmd_bc)

    ft = sub.add_parser("bc-finetune", help="PPO/PPG from a BC run, with a KL penalty towards it")
    ft.add_argument("bc_run")
    ft.add_argument("--algo", default="ppo", choices=("ppo", "ppg"))
    ft.add_argument("--kl-coef", type=float, default=0.0)
    ft.add_argument("--reward-model", default=None, help="a saved reward model (default: the env reward)")
    ft.add_argument("--timesteps", type=int, default=None, help="the environment budget")
    ft.add_argument("--no-progress", action="store_true")
    ft.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ft.set_defaults(handler=cmd_finetune)

    track = sub.add_parser("track", help="score a run under a MineRL track (budget check + held-out levels)")
    tsub = track.add_subparsers(dest="track_command", required=True)
    score = tsub.add_parser("score")
    score.add_argument("track", help="minerl-limited-budget or minerl-demonstrations-only")
    score.add_argument("run")
    score.add_argument("--env-budget", type=int, default=None, help="the stated budget (limited-budget track)")
    score.add_argument("--episodes", type=int, default=100)
    score.set_defaults(handler=cmd_track_score)


def _overrides(pairs) -> dict:
    from workbench.cli.main import _parse_overrides

    return _parse_overrides(pairs)


def _store(store):
    from workbench.demonstrations.sets import DemonstrationStore

    return DemonstrationStore(store.root)


def cmd_list(args, store) -> None:
    for s in _store(store).list():
        print(f"{s.name}\t{s.episodes} episodes\t{s.description}")


def cmd_create(args, store) -> None:
    demos = _store(store)
    ids = list(args.episodes)
    if args.human:
        ids += [e.id for e in demos.rollouts.list(policy="human", env=args.env)][::-1]  # oldest first
    if not ids:
        raise ValueError("no episodes: give episode ids or --human (with episodes people played)")
    info = demos.create(args.name, ids, args.description)
    print(f"{info.name}: {info.episodes} episodes")


def cmd_show(args, store) -> None:
    demos = _store(store)
    for episode_id in demos.episode_ids(args.name):
        info = demos.rollouts.info(episode_id)
        player = demos.player(episode_id) or ""
        print(f"{episode_id}\t{info.env}\t{info.policy}\t{player}\tseed={info.level_seed}\tlength={info.length}"
              f"\treturn={info.ret:g}")


def cmd_export(args, store) -> None:
    if args.format == "npz":
        if args.file is None or args.out or args.dataset_id:
            raise ValueError("--format npz writes one file: workbench demos export NAME FILE.npz")
        print(_store(store).export(args.name, args.file))
        return
    from workbench.demonstrations.minari_export import export_minari

    if args.out is None or args.dataset_id is None or args.file is not None:
        raise ValueError("--format minari needs --out DIR and --dataset-id ID (e.g. workbench/coinrun/human-v0), "
                         "and no FILE")
    print(export_minari(_store(store), args.name, args.dataset_id, args.out))


def cmd_import(args, store) -> None:
    info = _store(store).import_file(args.file, args.name)
    print(f"{info.name}: {info.episodes} episodes")


def cmd_bc(args, store) -> None:
    from workbench import registry

    fields = {"demo_set": args.demo_set, "env": args.env, "device": args.device, "name": args.name}
    for key in ("updates", "width"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    fields.update(_overrides(args.set))
    mode = fields.pop("distribution_mode", "easy")
    config = registry.make_config("bc", mode, **fields)
    _store(store).episode_ids(config.demo_set)  # an unknown set fails before a run is created
    print(registry.train(config, store=store, progress=not args.no_progress))


def cmd_finetune(args, store) -> None:
    from workbench.demonstrations.finetune import finetune_from_bc

    fields = _overrides(args.set)
    if args.timesteps is not None:
        fields["total_timesteps"] = args.timesteps
    print(finetune_from_bc(args.bc_run, algo=args.algo, kl_coef=args.kl_coef, reward_model=args.reward_model,
                           store=store, progress=not args.no_progress, **fields))


def cmd_track_score(args, store) -> None:
    from workbench.demonstrations.tracks import get_track, score_track

    track = get_track(args.track, args.env_budget)
    print(json.dumps(score_track(track, args.run, store=store, episodes=args.episodes), indent=1))
