"""The Monitor's launch form and run controls: the paper defaults of each algorithm, validated before anything
starts, one OS process per seed (workbench.monitor.launch), an estimate of the wall time from the speed runs of
the same game and algorithm measured, and stop/resume of the selected runs. Launching runs off the page's event
loop, so the page stays live while a run starts."""

from __future__ import annotations

import html
import json
import threading

import panel as pn

from workbench.monitor import launch

FORM_HYPERPARAMETERS = ("num_envs", "num_steps", "num_minibatches", "update_epochs", "learning_rate", "gamma",
                        "gae_lambda", "clip_coef", "ent_coef")
INTEGER_FIELDS = ("num_envs", "num_steps", "num_minibatches", "update_epochs")


def _error(text: str) -> str:
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'


class LaunchFormMixin:
    """The launch form of :class:`widgets.training_monitor.TrainingMonitor` (needs ``self.store``,
    ``self.message``, ``self.selected_run_ids`` and ``self.refresh``)."""

    def _build_form(self) -> None:
        from workbench.registry import ALGOS
        from workbench.rl.env_registry import ENV_NAMES

        self.form_algo = pn.widgets.Select(label="Algorithm", options=list(ALGOS), value="ppo", css_classes=["wb-form-algo"])
        self.form_env = pn.widgets.Select(label="Game", options=list(ENV_NAMES), value="coinrun", css_classes=["wb-form-env"])
        self.form_mode = pn.widgets.Select(label="Mode", options=["easy", "hard"], value="easy", css_classes=["wb-form-mode"])
        self.form_levels = pn.widgets.TextInput(label="Levels (num_levels)", css_classes=["wb-form-num_levels"])
        self.form_timesteps = pn.widgets.TextInput(label="Timesteps", css_classes=["wb-form-timesteps"])
        self.form_seeds = pn.widgets.TextInput(label="Seeds (0 or 0,1,2 or 0-4)", value="0", css_classes=["wb-form-seeds"])
        self.form_width = pn.widgets.TextInput(label="Width", css_classes=["wb-form-width"])
        self.form_device = pn.widgets.TextInput(label="Device", css_classes=["wb-form-device"])
        self.form_name = pn.widgets.TextInput(label="Name (optional)", css_classes=["wb-form-name"])
        self.form_hyper = {k: pn.widgets.TextInput(label=k, css_classes=[f"wb-form-{k}"]) for k in FORM_HYPERPARAMETERS}
        self.form_extra = pn.widgets.TextInput(label="Other settings (JSON object)", placeholder='{"checkpoint_every": 5}',
                                           css_classes=["wb-form-extra"])
        # field -> text input, e.g. monitor.form_inputs["num_envs"].value = "8"
        self.form_inputs = {"num_levels": self.form_levels, "timesteps": self.form_timesteps, "seeds": self.form_seeds,
                            "width": self.form_width, "device": self.form_device, "name": self.form_name,
                            **self.form_hyper, "extra": self.form_extra}
        self.launch_button = pn.widgets.Button(label="Launch", color="primary", width=120, css_classes=["wb-launch"])
        self.launch_button.on_click(lambda _e: self.launch_in_background())
        for widget in (self.form_algo, self.form_mode):
            widget.param.watch(lambda _e: self.fill_defaults(), "value")
        self.estimate = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-estimate"])
        for widget in (self.form_algo, self.form_env, self.form_timesteps):
            widget.param.watch(lambda _e: self.update_estimate(), "value")
        self.fill_defaults()
        self.form = pn.Column(
            pn.Row(self.form_algo, self.form_env, self.form_mode),
            pn.Row(self.form_levels, self.form_timesteps, self.form_seeds),
            self.estimate,
            pn.Row(self.form_width, self.form_device, self.form_name),
            pn.GridBox(*self.form_hyper.values(), ncols=3),
            self.form_extra,
            pn.Row(self.launch_button, self.message),
            sizing_mode="stretch_width",
        )

    def fill_defaults(self) -> None:
        """Fill the form with the paper defaults of the chosen algorithm and mode."""
        from workbench.registry import make_config

        config = make_config(self.form_algo.value, self.form_mode.value)
        self.form_levels.value = str(config.num_levels)
        self.form_timesteps.value = str(config.total_timesteps)
        self.form_width.value = str(config.width)
        self.form_device.value = str(config.device)
        for key, widget in self.form_hyper.items():
            widget.value = str(getattr(config, key))

    def update_estimate(self) -> str:
        """The form's time estimate: its timesteps at the speed recent runs of this algorithm and game
        measured (their logged steps_per_second)."""
        algo, env = self.form_algo.value, self.form_env.value
        try:
            timesteps = float(self.form_timesteps.value)
        except ValueError:
            self.estimate.object = ""
            return ""
        found = launch.estimate_wall_time(self.store, algo, env, timesteps)
        if found is None:
            text = (f"No speed measured yet for {algo} on {env} in this store: a short run measures it, and the "
                    f"estimate of the wall time appears here.")
        else:
            text = (f"≈ {launch.format_duration(found.seconds)} per run at {found.steps_per_second:,.0f} env "
                    f"steps/s (as measured by {found.run_name}; runs launched together share the machine).")
        self.estimate.object = f"<div style='color:#555'>{html.escape(text)}</div>"
        return text

    # ---- the launch form --------------------------------------------------------------------------

    def form_fields(self) -> dict:
        """The form as config fields (text parsed as JSON numbers where it is one)."""

        def number(text: str, integer: bool = False):
            text = text.strip()
            if text == "":
                return ""
            try:
                return int(text)
            except ValueError:
                pass
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
            if integer:
                if not value.is_integer():
                    raise ValueError(f"must be a whole number, got {text!r}")
                return int(value)
            return value

        fields: dict = {"env": self.form_env.value, "mode": self.form_mode.value}
        for key, widget, integer in (("num_levels", self.form_levels, True),
                                     ("total_timesteps", self.form_timesteps, True), ("width", self.form_width, False)):
            try:
                fields[key] = number(widget.value, integer)
            except ValueError as e:
                raise ValueError(f"{widget.label}: {e}") from None
        fields["device"] = self.form_device.value
        if self.form_name.value.strip():
            fields["name"] = self.form_name.value.strip()
        for key, widget in self.form_hyper.items():
            try:
                fields[key] = number(widget.value, key in INTEGER_FIELDS)
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
        extra = self.form_extra.value.strip()
        if extra:
            try:
                parsed = json.loads(extra)
            except json.JSONDecodeError as e:
                raise ValueError(f"Other settings must be a JSON object: {e}") from None
            if not isinstance(parsed, dict):
                raise ValueError("Other settings must be a JSON object such as {\"checkpoint_every\": 5}")
            fields.update(parsed)
        return fields

    def launch_in_background(self) -> threading.Thread:
        """Launch from the button: the processes start (and register their runs, which takes seconds) on a
        thread, so the page stays live; the message says "Starting..." until they have, then names them."""
        self.launch_button.disabled = True
        seeds = html.escape(self.form_seeds.value.strip() or "0")
        self.message.object = f"<div>Starting the run(s) for seed(s) {seeds}…</div>"

        def work():
            try:
                self.launch()
            finally:
                self.launch_button.disabled = False

        thread = threading.Thread(target=work, name="monitor-launch", daemon=True)
        thread.start()
        return thread

    def launch(self) -> list[str]:
        """Validate the form and start one run per seed; an invalid form shows a message and starts nothing."""
        try:
            seeds = launch.parse_seeds(self.form_seeds.value)
            fields = self.form_fields()
            launched = launch.launch_seeds(self.store.root, self.form_algo.value, fields, seeds)
        except (ValueError, RuntimeError) as e:
            self.message.object = _error(f"Not launched: {e}")
            return []
        ids = [run_id for run_id, _ in launched]
        self.message.object = f"<div>Launched {html.escape(', '.join(ids))}</div>"
        self.selected_run_ids = sorted(set(self.selected_run_ids) | set(ids))
        self.refresh()
        return ids

    def stop_selected(self) -> list[str]:
        stopped = [r for r in self.selected_run_ids if launch.stop_run(self.store.root, r)]
        self.message.object = (f"<div>Asked to stop: {html.escape(', '.join(stopped))}</div>" if stopped
                               else "<div>No selected run is running.</div>")
        return stopped

    def resume_selected(self) -> list[str]:
        resumed, problems = launch.resume_runs(self.store.root, self.selected_run_ids)
        text = f"Resumed: {', '.join(resumed)}" if resumed else "Nothing resumed."
        self.message.object = _error("\n".join([text, *problems])) if problems else f"<div>{html.escape(text)}</div>"
        return resumed
