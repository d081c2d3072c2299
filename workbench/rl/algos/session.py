"""What every engine's training loop needs around the science: the run record in the store, resuming from
the last checkpoint, periodic atomic checkpoints, metric logging, graceful stop on SIGTERM/SIGINT and the
progress bar. Engines (ppo.py, ppg.py) keep their loops readable by delegating all of that here:

    session = TrainingSession("ppo", config, state={"model": net, "optimizer": opt, ...}, store=store)
    session.restore(device)                     # continue from the last checkpoint, if there is one
    with session:                               # status "running"; "finished"/"stopped"/"failed" on exit
        while session.running:
            ...one iteration...
            session.end_iteration(env_steps, metrics)   # logs, checkpoints every `checkpoint_every`

Resume semantics: the checkpoint holds every stateful object plus the torch RNG, the iteration and the env
step count. Metrics logged after the checkpoint are deleted on restore (they are about to be produced
again), so each step appears once. Environment state is not checkpointed: a resumed run starts fresh
episodes on a seed derived from the iteration (`env_seed`).

Data-parallel runs (workbench.distributed, docs/distributed.md): `config` is the job's config; rank 0 alone
writes the store (run record, metrics, checkpoints, heartbeat, status), creates the run and sends its id to the
other ranks; on restore rank 0 reads the checkpoint and sends it to every rank, so all resume from the same one;
then each rank gets its own action-sampling and shuffling seeds (`group.rank_seed`). A stop request on any rank
stops every rank after the same iteration.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading

import torch
from tqdm.auto import tqdm

from workbench.distributed import group, launch, reduce
from workbench.storage.checkpoint_files import warn_damaged
from workbench.storage.liveness import HEARTBEAT_S
from workbench.storage.runs import RunStore


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag checked between iterations, so a stopped run checkpoints first.
    Installed only from the main thread (Python allows signal handlers nowhere else)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class GeneratorState:
    """Adapts a torch.Generator to the state_dict protocol so it checkpoints like a module."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


def resumable_problem(saved, state_names) -> str | None:
    """What a checkpoint lacks to resume an engine whose checkpointed objects are `state_names` (None: nothing)."""
    if not isinstance(saved, dict):
        return f"it holds a {type(saved).__name__}, not a checkpoint dict"
    missing = sorted({"state", "torch_rng", "iteration", "global_step"} - set(saved))
    if missing:
        return f"it lacks {missing} (it has {sorted(map(str, saved))})"
    if not isinstance(saved["state"], dict):
        return f"its 'state' is a {type(saved['state']).__name__}, not a dict"
    missing = sorted(set(state_names) - set(saved["state"]))
    if missing:
        return f"it lacks the state of {missing}: written by another algorithm or version (it has {sorted(saved['state'])})"
    return None


def rewind(store: RunStore, run_id: str, step: int) -> None:
    """Make the checkpoint at env step `step` the run's latest, so that a resume continues from it: it must be
    intact (DamagedCheckpointError naming the file otherwise), and every later checkpoint is renamed aside
    (`step_N.pt.superseded`, never deleted)."""
    store.load_intact_checkpoint(run_id, step, check=lambda saved: resumable_problem(saved, ()))
    for later, _ in store.list_checkpoints(run_id):
        if later > step:
            store.set_aside_checkpoint(run_id, later, "superseded")


class Heartbeat:
    """A daemon thread recording the run's liveness every HEARTBEAT_S (an iteration may take minutes), so a
    run whose process vanished (SIGKILL, reboot) shows as "died" rather than "running" forever."""

    def __init__(self, store: RunStore, run_id: str):
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store, run_id), daemon=True, name="heartbeat")
        self._thread.start()

    def _beat(self, store: RunStore, run_id: str) -> None:
        while not self._done.wait(HEARTBEAT_S):
            try:
                store.heartbeat(run_id)
            except Exception:  # a locked or vanished store: the next beat tries again; training goes on
                pass

    def stop(self) -> None:
        self._done.set()


class TrainingSession:
    def __init__(self, algo: str, config, *, state: dict, store: RunStore | None = None, run_id: str | None = None,
                 progress: bool = True):
        self.algo, self.config, self.state = algo, config, state
        self.recorder = None  # records an episode every config.record_every iterations (engines set it)
        self.writer = group.is_writer()  # rank 0 of a data-parallel run, or the only process
        self.store = store if store is not None or not self.writer else RunStore()
        if run_id is None and self.writer:
            run_id = self.store.create_run(algo=algo, env=config.env, config=dataclasses.asdict(config),
                                           name=config.name)
        self.run_id = group.broadcast_object(run_id)
        if self.writer:
            launch.announce_run_id(self.run_id)
        self.iteration, self.global_step = 0, 0
        self.num_iterations = math.ceil(config.total_timesteps / config.batch_size)
        self._progress = progress
        self._stop = StopRequest()
        self._last_checkpoint_iteration = None
        self._tensorboard = None
        if getattr(config, "tensorboard", False) and self.writer:
            from workbench.storage.tensorboard import TensorBoardWriter

            self._tensorboard = TensorBoardWriter(self.store.root / "tensorboard" / run_id)

    # ---- resume --------------------------------------------------------------------------------------
    def restore(self, map_location="cpu") -> bool:
        """Load the latest intact checkpoint into the state objects; False when the run has none yet. A damaged
        newer checkpoint (missing, empty, altered, unreadable, of another structure) is reported and skipped:
        its file is renamed aside (`step_N.pt.damaged`, never deleted) so that the resumed run's own checkpoints
        replace it. Metrics after the restored step are dropped (they are produced again), as after a kill.
        (To resume from an earlier checkpoint, `rewind` first.)"""
        found = None
        if self.writer and self.store.latest_checkpoint(self.run_id) is not None:
            found = self._load_latest(map_location if group.world_size() == 1 else "cpu")
        path, saved = group.broadcast_object(found) or (None, None)  # every rank resumes from rank 0's checkpoint
        if saved is not None:
            self._load_state(path, saved)
        if group.world_size() > 1:
            self._spread_ranks()
        return saved is not None

    def _load_latest(self, map_location):
        damaged = []

        def report(exc):
            damaged.append(exc.step)
            warn_damaged(exc)

        step, path, saved = self.store.load_intact_checkpoint(self.run_id, None, map_location, on_damaged=report,
                                                              check=self._checkpoint_problem)
        for later in damaged:
            self.store.set_aside_checkpoint(self.run_id, later, "damaged")
        return str(path), saved

    def _load_state(self, path: str, saved: dict) -> None:
        for name, obj in self.state.items():
            try:
                obj.load_state_dict(saved["state"][name])
            except (RuntimeError, KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"checkpoint {path} of run {self.run_id} does not fit this run's {name!r} "
                                 f"({type(exc).__name__}: {str(exc)[:300]}); was the config changed?") from None
        torch.set_rng_state(saved["torch_rng"].cpu())
        self.iteration, self.global_step = int(saved["iteration"]), int(saved["global_step"])
        self._last_checkpoint_iteration = self.iteration
        if self.writer:
            self.store.truncate_metrics(self.run_id, after_step=self.global_step)

    def _spread_ranks(self) -> None:
        """Data-parallel: identical weights on every rank (rank 0's, as the PPG code's sync_params), then this
        rank's own seeds for action sampling and minibatch order, distinct per rank and per resume point."""
        reduce.broadcast_parameters([obj for obj in self.state.values() if isinstance(obj, torch.nn.Module)])
        seed = group.rank_seed(self.config.seed, self.iteration)
        torch.manual_seed(seed)
        for obj in self.state.values():
            if isinstance(obj, GeneratorState):
                obj.generator.manual_seed(seed)

    def _checkpoint_problem(self, saved) -> str | None:
        return resumable_problem(saved, self.state)

    def env_seed(self, seed: int) -> int:
        """Env seed for this (re)start: differs per resume point so a resumed run does not replay levels."""
        return group.rank_seed(seed, self.iteration)  # also distinct per rank in a data-parallel run

    # ---- the loop ------------------------------------------------------------------------------------
    def __enter__(self) -> "TrainingSession":
        self._heartbeat = None
        if self.writer:
            self.store.set_status(self.run_id, "running", pid=os.getpid())
            self._heartbeat = Heartbeat(self.store, self.run_id)
        self._stop.__enter__()
        self._bar = tqdm(total=self.config.total_timesteps, initial=self.global_step, unit="step", unit_scale=True,
                         desc=self.run_id, disable=not (self._progress and self.writer), dynamic_ncols=True)
        return self

    @property
    def running(self) -> bool:
        return self.iteration < self.num_iterations and not group.any_rank(self._stop.requested)

    @property
    def stop_requested(self) -> bool:
        return self._stop.requested

    def request_stop(self) -> None:
        """Stop after the current iteration (what SIGTERM does), e.g. from a notebook thread."""
        self._stop.requested = True

    def end_iteration(self, env_steps: int, metrics: dict[str, float], postfix: dict | None = None) -> None:
        self.iteration += 1
        self.global_step += env_steps
        metrics = {**metrics, "iteration": self.iteration}
        if self.writer:
            self.store.log_metrics(self.run_id, self.global_step, metrics)
        if self._tensorboard is not None:
            self._tensorboard.add_scalars(self.global_step, metrics)
        if self.iteration % self.config.checkpoint_every == 0:
            self.checkpoint()
        self._bar.update(env_steps)
        if postfix:
            self._bar.set_postfix(postfix)

    def checkpoint(self) -> None:
        self._last_checkpoint_iteration = self.iteration
        if not self.writer:
            return  # every rank holds the same weights and statistics; rank 0 saves them
        self.store.save_checkpoint(self.run_id, self.global_step, {
            "state": {name: obj.state_dict() for name, obj in self.state.items()},
            "torch_rng": torch.get_rng_state(), "iteration": self.iteration, "global_step": self.global_step,
            "algo": self.algo})
        self._last_checkpoint_iteration = self.iteration

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._stop.__exit__()
        self._bar.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if exc_type is None and self._last_checkpoint_iteration != self.iteration:
            self.checkpoint()  # finished or stopped between checkpoints
        if exc_type is not None:
            status = "failed"  # state may be mid-update: keep the last good checkpoint
        else:
            status = "finished" if self.iteration >= self.num_iterations else "stopped"
        if self.writer:
            self.store.set_status(self.run_id, status)
