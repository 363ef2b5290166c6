"""Traffic: the listener weights deployer's rule sets, and which version each target group
serves (for events and messages).
"""

from __future__ import annotations

from deployer.aws.elbv2 import Elbv2
from deployer.aws.session import is_transient
from deployer.infra.stacks import Infra
from deployer.output.events import Events


class Traffic:
    def __init__(self, elb: Elbv2, events: Events) -> None:
        self.elb = elb
        self.events = events
        self._versions: dict[str, str] = {}  # target group arn -> version, as fleets are seen
        self._listeners: dict[str, str] = {}  # listener arn -> "production" or "test"

    def seen(self, infra: Infra) -> Infra:
        """Remember which listener is which, for the weights_changed events."""
        self._listeners[infra.listener_arn] = "production"
        self._listeners[infra.test_listener_arn] = "test"
        return infra

    def serves(self, target_group_arn: str, version: str) -> None:
        self._versions[target_group_arn] = version

    def set_weights(self, listener_arn: str, weights: dict[str, int]) -> None:
        """One rule change (ModifyRule); transient AWS errors are retried, anything else raised."""
        from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

        @retry(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(5),
            wait=wait_exponential(multiplier=0.1, max=2),
            reraise=True,
        )
        def change() -> None:
            self.elb.set_weights(listener_arn, weights)

        change()
        self.events.emit(
            "weights_changed",
            listener=self._listeners.get(listener_arn, "production"),
            weights=self.labelled(weights),
        )

    def labelled(self, weights: dict[str, int]) -> dict[str, int]:
        """Weights by version; two groups serving one version (an A/A release: the same build
        on a new fleet) are told apart by their target group's name, so none is lost.
        """
        versions = [self.version_of(arn) for arn in weights]
        return {
            (v if versions.count(v) == 1 else f"{v} ({_group_name(arn)})"): w
            for v, (arn, w) in zip(versions, weights.items(), strict=True)
        }

    def version_of(self, target_group_arn: str) -> str:
        """The version a target group serves (its fleet's tag), else the group's name."""
        return self._versions.get(target_group_arn) or _group_name(target_group_arn)


def _group_name(target_group_arn: str) -> str:
    """`arn:...:targetgroup/<name>/<id>` -> `<name>`."""
    parts = target_group_arn.rsplit(":", 1)[-1].split("/")
    return parts[1] if len(parts) > 1 else target_group_arn
