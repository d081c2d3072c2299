"""`workbench ood`, `workbench calibration-shift`, `workbench alarm`: the safety monitors. See docs/safety.md.

    workbench ood RUN [--shifts test,hard,noise,blur,colour,colours,game:NAME] [--frames N] [--severity 1-5]
                      [--ensemble RUN2,RUN3] [--knn-k K] [--step N]           (prints a table and the result id)
    workbench ood --list [--run RUN]                                           (stored results)
    workbench calibration-shift RUN [--shifts train,test,hard] [--episodes N] [--step N]
    workbench alarm RUN                                                       (the proxy-gaming alarm's verdict)
"""

from __future__ import annotations


def add_parsers(sub) -> None:
    ood = sub.add_parser("ood", help="out-of-distribution detection from a policy's outputs (docs/safety.md)")
    ood.add_argument("run", nargs="?", default=None)
    ood.add_argument("--shifts", default="test,noise,blur,colour",
                     help="comma-separated: test, hard, colours (colour-cue tasks), noise, blur, colour, game:NAME")
    ood.add_argument("--frames", type=int, default=1024, help="frames per source (training levels and each shift)")
    ood.add_argument("--severity", type=int, default=3, help="corruption severity 1-5 (ImageNet-C's scale)")
    ood.add_argument("--ensemble", default="", help="other runs of the same env: a value ensemble with RUN")
    ood.add_argument("--step", type=int, default=None, help="the checkpoint (default: the newest intact)")
    ood.add_argument("--knn-k", type=int, default=10, help="the knn detector's k (Sun et al. 2022)")
    ood.add_argument("--seed", type=int, default=0)
    ood.add_argument("--device", default="cpu")
    ood.add_argument("--list", action="store_true", help="list stored results (of --run RUN)")
    ood.add_argument("--run", dest="list_run", default=None)
    ood.set_defaults(handler=cmd_ood)

    cal = sub.add_parser("calibration-shift", help="the value function's calibration on train, test and hard levels")
    cal.add_argument("run")
    cal.add_argument("--shifts", default="train,test,hard")
    cal.add_argument("--episodes", type=int, default=100)
    cal.add_argument("--step", type=int, default=None)
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--max-steps", type=int, default=None, help="cut episodes at this length (they are skipped)")
    cal.add_argument("--device", default="cpu")
    cal.set_defaults(handler=cmd_calibration_shift)

    alarm = sub.add_parser("alarm", help="the proxy-gaming alarm over a stored run against a reward model")
    alarm.add_argument("run")
    alarm.set_defaults(handler=cmd_alarm)


def _print_rows(rows: list[dict], columns: list[str]) -> None:
    print("\t".join(columns))
    for row in rows:
        print("\t".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))


def cmd_ood(args, store) -> int:
    from workbench.safety.ood import OODStore, evaluate_ood

    if args.list:
        for row in OODStore(store.root).list(args.list_run):
            print(f"{row['id']}\t{row['run_id']}\tstep={row['checkpoint_step']}\t{','.join(row['shifts'])}")
        return 0
    if args.run is None:
        raise ValueError("give a RUN to evaluate (workbench runs lists them), or --list")
    ensemble = [r.strip() for r in args.ensemble.split(",") if r.strip()]
    result = evaluate_ood(args.run, shifts=args.shifts, frames=args.frames, severity=args.severity,
                          ensemble_runs=ensemble, checkpoint_step=args.step, seed=args.seed, store_root=store.root,
                          knn_k=args.knn_k, device=args.device)
    _print_rows(result.table(), ["shift", "detector", "auroc", "aupr_in", "aupr_out", "fpr95"])
    print(result.id)
    return 0


def cmd_calibration_shift(args, store) -> int:
    from workbench.safety.calibration_shift import calibration_under_shift

    rows = calibration_under_shift(args.run, episodes=args.episodes, shifts=args.shifts, checkpoint_step=args.step,
                                   seed=args.seed, store_root=store.root, device=args.device,
                                   max_steps=args.max_steps)
    _print_rows(rows, ["shift", "n", "accuracy", "mean_confidence", "ece", "brier", "set_id"])
    return 0


def cmd_alarm(args, store) -> int:
    from workbench.safety.alarm import check_run

    report = check_run(store, args.run)
    if not report.fired:
        print(f"{args.run}: no proxy-gaming alarm over {len(report.steps)} logged iterations")
        return 0
    for event in report.events:
        print(f"{args.run}: alarm from step {event['step']:,}: {event['reason']}")
    print(f"{args.run}: alarm held on {int(report.firing.sum())} of {len(report.steps)} iterations, "
          f"first at step {report.first_step:,}")
    return 0


__all__ = ["add_parsers"]
