"""What every command is handed: the config path, the run's events and outputs, and the
wiring from a config to an engine. Heavy modules (pydantic, boto3, the engine) are imported
inside the methods that need them, so that `--help` and argument errors answer at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.cli.outcome import ENDING, say

if TYPE_CHECKING:
    from deployer.config.loading import LoadedConfig


class Context:
    def __init__(self, config_path: Path) -> None:
        from deployer.output.events import Events, new_run_id
        from deployer.output.outputs import RunOutputs

        self.config_path = config_path
        self.workdir = Path.cwd()
        self.strategy: str | None = None
        self.executor: str | None = None
        self.detach = False
        self.aws: Any = None  # the AwsContext of the engine, once made: did changes begin?
        self.events = Events(new_run_id())
        self.outputs = RunOutputs(self.events, self.workdir)
        self.allow_short_credentials = False
        self.replace_failed = False
        ENDING.changes_begun = lambda: bool(self.aws is not None and self.aws.changes_begun)
        ENDING.error_log = self.workdir / ".deployer" / "last-error.log"

    def output(self, mode: str) -> None:
        ENDING.json = mode == "json"

    def report(self, line: str) -> None:
        self.events.say(line)

    def start_run(
        self, command: str, version: str | None, events_to: str | None, output: str
    ) -> None:
        """A run command's outputs: its event sinks, and at every exit its outcome event,
        summary and notifications. run_started is emitted once the config loads.
        """
        from deployer.target import placement

        self.output(output)
        ENDING.run(lambda: self.outputs.open(command, events_to, output == "json"))
        ENDING.result_to_stderr = events_to == "-"
        ENDING.on_end = self.outputs.end
        loaded = ENDING.run(self.config)
        where = ENDING.run(lambda: placement(loaded).label)
        ENDING.run(lambda: self.outputs.started(loaded, version, where))

    def config(self) -> LoadedConfig:
        from deployer.config.loading import LoadedConfig, load_config
        from deployer.config.model import server_side_problem
        from deployer.errors import ConfigError

        loaded = load_config(self.config_path)
        spec = loaded.spec
        if self.strategy is not None:
            strategy = spec.strategy.model_copy(update={"kind": self.strategy})
            spec = spec.model_copy(update={"strategy": strategy})
        if self.executor is not None:
            spec = spec.model_copy(update={"executor": self.executor})
            problem = server_side_problem(spec)
            if problem:
                raise ConfigError(str(loaded.path), "--executor", problem)
        return loaded if spec is loaded.spec else LoadedConfig(path=loaded.path, spec=spec)

    def checked(self, version: str | None = None) -> LoadedConfig:
        """The config, the version and every local check (templates, playbook, artifact):
        bad input exits 2 here, before anything (the sandbox included) is started.
        """
        from deployer.core.names import Version
        from deployer.release.preflight import check_local

        if version is not None:
            ENDING.run(lambda: Version.parse(version))
        loaded = ENDING.run(self.config)
        ENDING.run(lambda: check_local(loaded, self.workdir, say))
        return loaded

    def refuse_if_locked(self) -> None:
        """Exit 3 at once if another run holds the lock: before the preflight, so that the
        losers of a race hear it in a moment. Starts nothing (no sandbox: no lock either).
        """
        from deployer.errors import Unreachable

        try:
            engine = self._make_engine(start_sandbox=False)
        except Unreachable:
            return
        # A release running in AWS holds it: the release command attaches or refuses.
        ENDING.run(lambda: engine.lock.refuse_if_held(engine.stamp(), unless_server_side=True))

    def engine(self, start_sandbox: bool = True) -> Any:
        return ENDING.run(lambda: self._make_engine(start_sandbox))

    def _make_engine(self, start_sandbox: bool) -> Any:
        from deployer.aws.poller import Poller
        from deployer.release.engine import Engine
        from deployer.target import open_target

        loaded = self.config()
        poller = Poller(report=self.report)
        runtime = open_target(loaded, self.workdir, poller, self.report, start_sandbox)
        self.aws = runtime.aws
        engine = Engine(loaded, runtime, poller, self.report, self.workdir, events=self.events)
        engine.allow_short_credentials = self.allow_short_credentials
        engine.replace_failed = self.replace_failed
        engine.detach = self.detach
        return engine
