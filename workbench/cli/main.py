"""The `workbench` command line: train, list runs, resume, evaluate.

    workbench train --algo ppo --env coinrun --distribution-mode easy --num-levels 200 --timesteps 25e6 --seed 0
    workbench runs
    workbench resume RUN
    workbench eval RUN --levels train|test --episodes N
    workbench rollout RUN [--checkpoint STEP] --episodes N --levels train|test [--level-seeds 1,2,3]
    workbench rollout --random coinrun --level-seeds 1,2,3      # no run needed
    workbench rollouts [--run RUN]
    workbench labels import ITEMS.jsonl --campaign NAME --kind text_pair|ranking [--overlap N]
    workbench labels import PUBLIC.jsonl [--format trl|hh_rlhf|webgpt|summarize_from_feedback|ranking] [--items-only]
    workbench labels export CAMPAIGN --format jsonl|parquet|trl-jsonl|trl-parquet --out PATH
    workbench labels stats CAMPAIGN

The dashboard is served by `workbench-dashboard` (see widgets/app.py); this module stays headless.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from workbench.preferences.labels.formats import ADAPTERS as PUBLIC_FORMATS
from workbench.storage.durable import input_file, output_file

# Each domain's subcommands live in their own module, workbench/cli/<domain>.py, with
# `add_parsers(sub)` (adds its subparsers, each with set_defaults(handler=...)) and handlers
# `handler(args, store) -> int | None`. Adding a domain's commands is one line here.
COMMAND_MODULES: tuple[str, ...] = ("search", "studies", "demonstrations", "safety")

ALGOS = ("ppo", "ppo-ewma", "ppg", "ppg-ewma")  # = workbench.registry.ALGOS (checked by a test)
RM_ALGOS = ("ppo-rm", "ppg-rm")  # = registry.RM_ALGOS: against a reward model, e.g. --set reward_model=PATH
PRESETS = ("procgen", "ppg-paper", "ewma-paper")  # = workbench.rl.algos.presets.PRESETS (checked by a test)


def _positive_int(text: str) -> int:
    """Accepts 25e6 as well as 25000000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 25e6, got {text!r}") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(value)


def _optional_bool(text: str) -> bool | None:
    choices = {"auto": None, "true": True, "on": True, "1": True, "false": False, "off": False, "0": False}
    if text.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected one of {sorted(choices)}, got {text!r}")
    return choices[text.lower()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="run store folder (default: $WORKBENCH_HOME or ./runs)")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a policy; prints the run id")
    tr.add_argument("--algo", default="ppo", choices=ALGOS + RM_ALGOS,
                    help="ppo-rm/ppg-rm: against a reward model (--set reward_model=PATH --set kl_coef=0.02, "
                         "see docs/rlhf.md)")
    tr.add_argument("--env", default="coinrun", help="a Procgen game (or 'colour_cue', the small test task)")
    tr.add_argument("--distribution-mode", default=None, choices=("easy", "hard"),
                    help="default: easy (procgen preset), hard (paper presets)")
    tr.add_argument("--preset", default="procgen", choices=PRESETS,
                    help="the paper the defaults reproduce: procgen (Procgen paper, 500 levels/200M hard), "
                         "ppg-paper / ewma-paper (hard, full distribution, 100M, the PPG code's settings; "
                         "--algo ppo --preset ppg-paper is the PPG paper's PPO baseline); see docs/presets.md")
    tr.add_argument("--num-levels", type=int, default=None, help="training levels (default 200 easy / 500 hard)")
    tr.add_argument("--start-level", type=int, default=0)
    tr.add_argument("--num-envs", type=_positive_int, default=None, help="total envs (default 64 easy / 256 hard)")
    tr.add_argument("--timesteps", type=_positive_int, default=None, help="env steps (default 25e6 easy / 200e6 hard)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--width", type=float, default=1.0, help="IMPALA width multiplier")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--bf16", type=_optional_bool, default=None, help="auto|on|off (auto = measured default)")
    tr.add_argument("--name")
    tr.add_argument("--batch-scale", default=None, metavar="FACTOR",
                    help="multiply the batch by FACTOR (e.g. 1/4) with the EWMA paper's adjustments "
                         "(Adam step size, EWMA decays, advantage normalization, PPG's N_pi)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config field, e.g. --set learning_rate=2.5e-4 (JSON values)")
    tr.add_argument("--tensorboard", action="store_true",
                    help="also write TensorBoard event files under <store>/tensorboard/<run id>")
    tr.add_argument("--record-every", type=int, default=0, metavar="K",
                    help="record one whole episode (with the 512x512 render) every K iterations (0 = off)")
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("--nproc-per-node", type=_positive_int, default=1, metavar="K",
                    help="data-parallel over K processes on this machine (torchrun; num_envs is the total, split "
                         "across them; see docs/distributed.md)")

    ro = sub.add_parser("rollout", help="record whole episodes of a run's checkpoint (or of a random policy)")
    ro.add_argument("run", nargs="?", help="run id (omit with --random ENV)")
    ro.add_argument("--random", metavar="ENV", help="record a uniformly random policy on ENV (no run needed)")
    ro.add_argument("--checkpoint", "--step", dest="checkpoint", type=int, default=None,
                    help="env step of the checkpoint (default: the newest intact one)")
    ro.add_argument("--episodes", type=_positive_int, default=1)
    ro.add_argument("--levels", default="train", choices=("train", "test"),
                    help="the run's training levels or the whole distribution (ignored with --level-seeds)")
    ro.add_argument("--level-seeds", default=None, metavar="S1,S2,...", help="play exactly these levels")
    ro.add_argument("--distribution-mode", default="easy", choices=("easy", "hard"), help="with --random")
    ro.add_argument("--no-hires", action="store_true", help="skip the 512x512 render (64x64 frames only)")
    ro.add_argument("--max-steps", type=_positive_int, default=None, help="cut episodes at this many steps")
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--device", default="cpu")
    ro.add_argument("--no-progress", action="store_true", help="no progress bar")
    rl = sub.add_parser("rollouts", help="list recorded episodes")
    rl.add_argument("--run", default=None)
    rl.add_argument("--level-seed", type=int, default=None)

    sub.add_parser("runs", help="list runs with their status and latest metrics")

    bm = sub.add_parser("benchmark", help="train and score a grid of games x algorithms x seeds under a protocol")
    bm.add_argument("--protocol", default="generalization",
                    help="generalization | sample-efficiency | competition-generalization | "
                         "competition-sample-efficiency")
    bm.add_argument("--games", required=True, help="comma-separated, e.g. coinrun,starpilot")
    bm.add_argument("--algos", default="ppo", help="comma-separated: ppo, ppo-ewma, ppg, ppg-ewma")
    bm.add_argument("--seeds", type=_positive_int, default=3)
    bm.add_argument("--distribution-mode", default="easy", choices=("easy", "hard"))
    bm.add_argument("--timesteps", type=_positive_int, default=None, help="per run (default: the protocol's)")
    bm.add_argument("--parallel", type=_positive_int, default=2, help="training processes at a time")
    bm.add_argument("--episodes", type=_positive_int, default=100, help="evaluation episodes per level set")
    bm.add_argument("--out", default="benchmark-results", help="folder for table.csv, table.md, scores.json")
    bm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override per run")
    bm.add_argument("--study", default=None, help="the study's name (default: derived from the settings; "
                                                  "re-running the same command continues it)")
    bm.add_argument("--executor", default="local", choices=("local", "ray"), help="see `workbench sweep`")
    bm.add_argument("--ray-address", default=None, help="a Ray cluster (default: a local Ray runtime)")

    rs = sub.add_parser("resume", help="continue a run from its newest intact checkpoint")
    rs.add_argument("run")
    rs.add_argument("--nproc-per-node", type=_positive_int, default=1, metavar="K",
                    help="data-parallel over K processes on this machine (as the run's `train`)")
    rs.add_argument("--step", type=int, default=None,
                    help="continue from the checkpoint at this env step instead (later ones are set aside, not deleted)")
    rs.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a run's checkpoint on training or test levels")
    ev.add_argument("run")
    ev.add_argument("--levels", default="test", choices=("train", "test"))
    ev.add_argument("--episodes", type=_positive_int, default=100)
    ev.add_argument("--checkpoint", "--step", dest="checkpoint", type=int, default=None,
                    help="env step of the checkpoint (default: the newest intact one)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    # ---- labels (workbench/preferences/labels/; schema in docs/labels_schema.md) ----
    lb = sub.add_parser("labels", help="preference-label campaigns: import items, export labels, agreement stats")
    lsub = lb.add_subparsers(dest="labels_command", required=True)
    li = lsub.add_parser("import", help="add items from a JSONL file ({prompt, a, b, meta} or {prompt, responses, "
                                        "meta} per line) to a campaign, creating it if needed; with --labels, "
                                        "import a label export (export --format jsonl) instead")
    li.add_argument("file")
    li.add_argument("--campaign", default=None, help="campaign name (required for items)")
    li.add_argument("--kind", default=None, choices=("text_pair", "ranking", "clip_pair"))
    li.add_argument("--overlap", type=_positive_int, default=None, help="labelers per item (new campaign; default 1)")
    li.add_argument("--labels", action="store_true", help="FILE is a label export, not items")
    li.add_argument("--format", default=None, choices=tuple(PUBLIC_FORMATS),
                    help="a published preference format (default: detected from the fields; docs/labels_schema.md)")
    li.add_argument("--items-only", action="store_true", help="public data: import the items without their labels")
    li.add_argument("--labeler", default=None, help="public data: labeler name when the file names none")
    le = lsub.add_parser("export", help="write a campaign's labels (one row per label, chosen/rejected + raw fields); "
                                        "trl-*: prompt/chosen/rejected as TRL's RewardTrainer reads them")
    le.add_argument("campaign")
    le.add_argument("--format", default="jsonl", choices=("jsonl", "parquet", "trl-jsonl", "trl-parquet"))
    le.add_argument("--adjudicated", action="store_true", help="trl-*: one row per adjudicated item, not per label")
    le.add_argument("--out", required=True)
    ls = lsub.add_parser("stats", help="progress and agreement statistics of a campaign")
    ls.add_argument("campaign")
    # ---- reward models (workbench/preferences/reward/; docs/reward_models.md) ----
    rw = sub.add_parser("reward", help="reward models from a labeling campaign's comparisons")
    rwsub = rw.add_subparsers(dest="reward_command", required=True)
    rwt = rwsub.add_parser("train", help="train a reward-model ensemble on a campaign; prints the run id")
    rwt.add_argument("--campaign", required=True)
    rwt.add_argument("--members", type=_positive_int, default=None, help="ensemble size (default 3)")
    rwt.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default 10)")
    rwt.add_argument("--name", default=None)
    rwt.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                     help="override any RewardConfig field (JSON values), e.g. --set equal=drop --set noise_floor=false")
    for module in COMMAND_MODULES:
        importlib.import_module(f"workbench.cli.{module}").add_parsers(sub)
    return parser


def _parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def cmd_train(args, store) -> str:
    from workbench import registry
    from workbench.rl.env_registry import validate_env_name

    fields = dict(env=args.env, start_level=args.start_level, seed=args.seed, width=args.width,
                  device=args.device, bf16=args.bf16, name=args.name, tensorboard=args.tensorboard,
                  record_every=args.record_every)
    for key, value in (("num_levels", args.num_levels), ("num_envs", args.num_envs),
                       ("total_timesteps", args.timesteps)):
        if value is not None:
            fields[key] = value
    fields.update(_parse_overrides(args.set))
    validate_env_name(fields["env"])  # before a run is created in the store
    if isinstance(fields.get("reward_model"), str):
        input_file(fields["reward_model"], "reward model", folder=True)  # save_reward_model writes a folder
    mode = fields.pop("distribution_mode", args.distribution_mode)  # --set distribution_mode=... is the flag's
    config = registry.make_config(args.algo, mode, batch_scale=args.batch_scale, preset=args.preset, **fields)
    if args.batch_scale is not None and config.update_epochs != 1:
        print(f"note: the batch-size adjustments assume one policy epoch (update_epochs = {config.update_epochs})",
              file=sys.stderr)
    return registry.train(config, store=store, progress=not args.no_progress)


def cmd_resume(args, store) -> str:
    from workbench import registry
    from workbench.distributed import group
    from workbench.rl.algos.session import rewind

    # Data-parallel: only rank 0 reads the store (the other ranks' machines need not share its folder).
    info = group.broadcast_object(store.get_run(args.run) if group.is_writer() else None)
    if info.status == "running" and not info.died:
        raise ValueError(f"run {args.run} is running (pid {info.pid}); stop it before resuming")
    config = registry.config_from_run(info.algo, info.config)
    if args.step is not None and group.is_writer():
        rewind(store, args.run, args.step)
    return registry.train(config, store=store, run_id=args.run, progress=not args.no_progress)


def cmd_runs(store) -> None:
    runs = store.list_runs()
    if not runs:
        print("no runs yet: start one with `workbench train`")
        return
    print(f"{'run':42} {'status':9} {'env steps':>11} {'return':>8} {'norm':>6}  started")
    died = []
    for r in runs:
        latest = store.latest_metrics(r.id)
        ret = latest.get("episode_return", (0, float("nan")))[1]
        norm = latest.get("normalized_return", (0, float("nan")))[1]
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        status = r.display_status
        print(f"{r.id:42} {status:9} {r.env_steps:>11,} {ret:>8.2f} {norm:>6.3f}  {started}")
        if status == "died":
            died.append(r)
    for r in died:
        saved = store.latest_checkpoint(r.id)
        where = f"its last checkpoint is at step {saved[0]:,}" if saved else "it saved no checkpoint"
        print(f"run {r.id} died at env step {r.env_steps:,} ({where}): continue it with `workbench resume {r.id}`")


def cmd_eval(args, store) -> None:
    from workbench.rl.evaluate import evaluate_run

    result = evaluate_run(args.run, levels=args.levels, episodes=args.episodes, store=store,
                          checkpoint_step=args.checkpoint, seed=args.seed, device=args.device,
                          progress=not args.no_progress)
    s = result.summary()
    print(f"{args.run} @ step {s['checkpoint_step']:,} on {s['levels']} levels, {s['episodes']} episodes: "
          f"mean return {s['mean_return']:.3f} +- {s['stderr_return']:.3f} (s.e.), "
          f"normalized {s['normalized_return']:.3f}")


def _level_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--level-seeds expects comma-separated integers such as 1,2,3, got {text!r}") from None


def cmd_rollout(args, store) -> None:
    from workbench.episodes.rollouts import record_random, record_run

    if (args.run is None) == (args.random is None):
        raise ValueError("give either a run id or --random ENV (and not both)")
    common = dict(episodes=args.episodes, level_seeds=_level_seeds(args.level_seeds), hires=not args.no_hires,
                  seed=args.seed, store_root=store.root, max_steps=args.max_steps, progress=not args.no_progress)
    if args.random is not None:
        ids = record_random(args.random, distribution_mode=args.distribution_mode,
                            num_levels=0, **common)
    else:
        ids = record_run(args.run, checkpoint_step=args.checkpoint, levels=args.levels, device=args.device, **common)
    for episode_id in ids:
        print(episode_id)


def cmd_rollouts(args, store) -> None:
    from workbench.episodes.rollouts import RolloutStore

    infos = RolloutStore(store.root).list(run_id=args.run, level_seed=args.level_seed)
    if not infos:
        print("no recorded episodes yet: record some with `workbench rollout RUN` or `workbench rollout --random ENV`")
        return
    print(f"{'episode':44} {'env':10} {'seed':>10} {'steps':>6} {'return':>8}  {'run @ checkpoint'}")
    for i in infos:
        source = "random policy" if i.run_id is None else f"{i.run_id} @ {i.checkpoint_step:,}"
        seed = "-" if i.level_seed is None else i.level_seed
        print(f"{i.id:44} {i.env:10} {seed:>10} {i.length:>6} {i.ret:>8.2f}  {source}")


def cmd_benchmark(args, store) -> None:
    from workbench.studies.benchmark import run_grid, write_tables

    executor = None
    if args.executor == "ray":
        from workbench.studies.executors import RayExecutor

        executor = RayExecutor(store.root, address=args.ray_address, parallel=args.parallel)

    scores = run_grid(args.protocol, [g.strip() for g in args.games.split(",") if g.strip()],
                      [a.strip() for a in args.algos.split(",") if a.strip()], args.seeds,
                      mode=args.distribution_mode, timesteps=args.timesteps, parallel=args.parallel,
                      episodes=args.episodes, store=store, overrides=_parse_overrides(args.set),
                      log=lambda msg: print(msg, file=sys.stderr), study=args.study, executor=executor)
    csv_path, md_path, markdown = write_tables(scores, args.out)
    print(markdown)
    print(f"wrote {csv_path} and {md_path}")


def cmd_labels(args) -> None:
    from workbench.preferences.labels import (
        LabelStore,
        UnknownCampaignError,
        read_items_jsonl,
    )

    if args.labels_command == "import":
        input_file(args.file, "labels import file" if args.labels else "items file")
    elif args.labels_command == "export":
        output_file(args.out, "--out")
    labels = LabelStore(args.store)
    if args.labels_command == "import" and args.labels:
        print(f"imported {labels.import_jsonl(args.file, campaign=args.campaign)} labels")
    elif args.labels_command == "import" and (args.format or _is_public_file(args.file)):
        if args.kind or args.labels:
            raise ValueError("--kind is for workbench item files; a public format's kind follows from its fields")
        name = args.campaign or Path(args.file).name.split(".")[0]
        r = labels.import_public(args.file, name, fmt=args.format, items_only=args.items_only, labeler=args.labeler,
                                 overlap=args.overlap or 1)
        print(f"imported {r['rows']} {r['format']} rows into campaign {r['campaign']!r}: {r['items']} new items, "
              f"{r['labels']} labels")
    elif args.labels_command == "import":
        if not args.campaign:
            raise ValueError("--campaign NAME is required to import items")
        try:
            camp = labels.get_campaign(args.campaign)
        except UnknownCampaignError:
            camp = None
        kind = args.kind or (camp.kind if camp else None)
        if kind is None:
            raise ValueError(f"campaign {args.campaign!r} does not exist yet: give --kind text_pair|ranking")
        if camp is not None and camp.kind != kind:
            raise ValueError(f"campaign {args.campaign!r} is a {camp.kind} campaign, not {kind}")
        if camp is not None and args.overlap is not None and args.overlap != camp.overlap:
            raise ValueError(f"campaign {args.campaign!r} already exists with overlap {camp.overlap}")
        payloads = read_items_jsonl(args.file, kind)  # every line checked before the campaign is created
        if camp is None:
            labels.create_campaign(args.campaign, kind, overlap=args.overlap or 1)
        ids = labels.add_items(args.campaign, payloads)
        print(f"added {len(ids)} items to campaign {args.campaign!r}")
    elif args.labels_command == "export" and args.format.startswith("trl-"):
        n = labels.export_trl(args.campaign, args.out, fmt=args.format[4:],
                              labels="adjudicated" if args.adjudicated else "raw")
        print(f"wrote {n} prompt/chosen/rejected rows to {args.out}")
    elif args.labels_command == "export":
        write = labels.export_parquet if args.format == "parquet" else labels.export_jsonl
        print(f"wrote {write(args.campaign, args.out)} labels to {args.out}")
    elif args.labels_command == "stats":
        from workbench.preferences.agreement import campaign_agreement

        camp = labels.get_campaign(args.campaign)
        p = labels.progress(args.campaign)
        print(f"campaign {camp.name!r} ({camp.kind}, overlap {camp.overlap}): {p['items']} items, "
              f"{p['labeled']} labels of a target {p['target']}, {p['assigned']} assigned now")
        print(campaign_agreement(labels, args.campaign).summary())
        disputed = labels.disagreements(args.campaign)
        print(f"items the labelers disagree on: {len(disputed)}, adjudicated: "
              f"{sum(d.adjudication is not None for d in disputed)}")


def _is_public_file(path) -> bool:
    """Whether a file's first row is a published preference format rather than a workbench item file."""
    from workbench.preferences.labels.formats import detect_format, read_rows

    rows = read_rows(path)
    if not rows or set(rows[0][1]) <= {"prompt", "a", "b", "meta", "responses"}:
        return False
    try:
        detect_format(rows[0][1])
    except ValueError:
        return False
    return True


def cmd_reward(args, store) -> None:
    from workbench.preferences.reward import RewardConfig, train_reward_model

    overrides = _parse_overrides(args.set)
    for key, value in (("members", args.members), ("epochs", args.epochs)):
        if value is not None:
            overrides[key] = value
    config = RewardConfig.from_overrides(overrides)
    result = train_reward_model(args.campaign, store.root, config, name=args.name,
                                progress=lambda msg: print(msg, file=sys.stderr))
    m = result.metrics
    print(result.run_id)
    print(f"{result.num_train_pairs} training / {result.num_heldout_pairs} held-out comparisons; held-out accuracy "
          f"{m.get('heldout_accuracy', float('nan')):.3f}, loss {m.get('heldout_loss', float('nan')):.4f}; "
          f"model saved to {result.model_path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "nproc_per_node", 1) > 1:
        from workbench.distributed import group

        if not group.launched_by_torchrun():
            return _launch_ranks(args, argv)
    import pickle
    import sqlite3

    from workbench.storage.runs import RunStore, UnknownRunError, default_root

    try:
        store = RunStore(args.store)
    except (OSError, sqlite3.Error) as exc:
        root = args.store or default_root()
        print(f"error: cannot open the run store at {root} ({_os_message(exc)}); give --store DIR or set "
              "$WORKBENCH_HOME to a writable folder", file=sys.stderr)
        return 2
    try:
        if getattr(args, "handler", None) is not None:
            return args.handler(args, store) or 0
        if args.command in ("train", "resume"):
            from workbench.distributed import group

            group.setup()  # a no-op unless torchrun started this process as one of several ranks
            run_id = (cmd_train if args.command == "train" else cmd_resume)(args, store)
            if group.is_writer():
                print(run_id)
            group.shutdown()
        elif args.command == "runs":
            cmd_runs(store)
        elif args.command == "eval":
            cmd_eval(args, store)
        elif args.command == "benchmark":
            cmd_benchmark(args, store)
        elif args.command == "rollout":
            cmd_rollout(args, store)
        elif args.command == "rollouts":
            cmd_rollouts(args, store)
        elif args.command == "labels":
            cmd_labels(args)
        elif args.command == "reward":
            cmd_reward(args, store)
    except (ValueError, UnknownRunError, RuntimeError, pickle.UnpicklingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only or locked store, a vanished file
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        return 2
    return 0


def _launch_ranks(args, argv: list[str]) -> int:
    """`train`/`resume` with --nproc-per-node K: K ranks under torchrun, each running this command without it."""
    from workbench.distributed import launch

    returncode, run_id = launch.run_ranks(launch.without_flag(argv, "--nproc-per-node"), args.nproc_per_node)
    if returncode != 0:
        store_flag = f" --store {args.store}" if args.store else ""
        print("error: " + launch.failure_message(returncode, run_id, args.nproc_per_node, store_flag), file=sys.stderr)
        return 2
    return 0


def _os_message(exc: BaseException) -> str:
    """One line for a file-system or database error: what failed, and on which file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    text = str(exc) or type(exc).__name__
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        text += " (is the folder read-only?)"
    return text


if __name__ == "__main__":
    sys.exit(main())
