"""Instances and images take AWS's time, as seen through the API (the `latency` behaviour;
see profile.py and latency.py):

- an instance is `pending` before it is `running`, and an Auto Scaling group registers it in
  its target groups only then (lifecycle Pending -> InService), as ELBv2 refuses pending ones;
- an image (CreateImage, CopyImage) is `pending` before it is `available`, for a time that
  grows with the size of its volumes.

moto does each of these at once. We let moto do the work, then hold the state back and
release it on schedule (World.later), recording each modelled operation on the timeline.
Stacks are in stacks.py.
"""

from __future__ import annotations

import inspect
from typing import Any

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.models import InstanceState as GroupInstanceState
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.instances import Instance, InstanceState

from deployer.sandbox import latency
from deployer.sandbox.patching import Patches
from deployer.sandbox.world import WORLD


def _latency_on() -> bool:
    return WORLD.behaviours.latency


def _instance_init(self: Instance, *args: Any, **kwargs: Any) -> None:
    PATCHES.original("instance_init")(self, *args, **kwargs)
    if not _latency_on():
        return
    self._state = InstanceState("pending", 0)
    delay = WORLD.scaled(latency.INSTANCE_PENDING_S)
    start = WORLD.clock()
    WORLD.span("instance-pending", self.id, start, start + delay)

    def run() -> None:
        if self._state.name == "pending":
            self._state.name, self._state.code = "running", 16
            group = getattr(self, "autoscaling_group", None)
            if group is not None:  # the group puts it in service, in its target groups
                group.autoscaling_backend.update_attached_target_groups(group.name)

    WORLD.later(delay, run)


def _attach_targets(self: AutoScalingBackend, group_name: str) -> None:
    """An Auto Scaling group registers an instance in its target groups once it is running
    (lifecycle Pending -> InService); ELBv2 refuses to register a pending one.
    """
    group = self.autoscaling_groups.get(group_name)
    if group is None:
        return
    waiting = [s for s in group.instance_states if s.instance.state == "pending"]
    for state in group.instance_states:
        state.lifecycle_state = "Pending" if state in waiting else "InService"
    if not waiting:
        PATCHES.original("attach_targets")(self, group_name)
        return
    kept = group.instance_states
    group.instance_states = [s for s in kept if s not in waiting]
    try:
        PATCHES.original("attach_targets")(self, group_name)
    finally:
        group.instance_states = kept


def _hold_image(ami: Any, seconds: float, kind: str) -> None:
    ami.state = "pending"
    delay = WORLD.scaled(seconds)
    start = WORLD.clock()
    WORLD.span(kind, ami.id, start, start + delay)

    def ready() -> None:
        if ami.state == "pending":
            ami.state = "available"

    WORLD.later(delay, ready)


def _image_gib(ami: Any) -> float:
    """The size of the volumes the image is made of: its instance's (moto says 15 for all)."""
    instance = getattr(ami, "instance", None)
    sizes = []
    for _, block in instance.get_block_device_mapping if instance is not None else []:
        try:
            sizes.append(float(ami.ec2_backend.get_volume(block.volume_id).size))
        except Exception:  # a volume moto no longer knows: count the default root
            continue
    return sum(sizes) or latency.DEFAULT_ROOT_GIB


def _create_image(self: AmiBackend, *args: Any, **kwargs: Any) -> Any:
    ami = PATCHES.original("create_image")(self, *args, **kwargs)
    if _latency_on():
        _hold_image(ami, latency.image_seconds(_image_gib(ami)), "image-pending")
    return ami


def _copy_image(self: AmiBackend, *args: Any, **kwargs: Any) -> Any:
    ami = PATCHES.original("copy_image")(self, *args, **kwargs)
    if _latency_on():
        _hold_image(ami, latency.copy_image_seconds(_image_gib(ami)), "image-copy")
    return ami


PATCHES = Patches()
PATCHES.add("instance_init", Instance, "__init__", _instance_init)
PATCHES.add("attach_targets", AutoScalingBackend, "update_attached_target_groups", _attach_targets)
PATCHES.add("create_image", AmiBackend, "create_image", _create_image)
PATCHES.add("copy_image", AmiBackend, "copy_image", _copy_image)
apply = PATCHES.apply
restore = PATCHES.restore


def check_internals() -> list[str]:
    """What moved in moto that these patches rely on (empty when nothing did)."""
    moved = []
    for names, wanted, label in [
        (Instance.__init__.__code__.co_names, "_state", "Instance._state"),
        (
            Instance.__init__.__code__.co_names,
            "instance_initiated_shutdown_behavior",
            "Instance.instance_initiated_shutdown_behavior",
        ),
        (Instance.__init__.__code__.co_names, "state_reason", "Instance.state_reason"),
        (GroupInstanceState.__init__.__code__.co_names, "lifecycle_state", "lifecycle_state"),
        (FakeAutoScalingGroup.__init__.__code__.co_names, "autoscaling_backend", "group backend"),
    ]:
        if wanted not in names:
            moved.append(label)
    for key, prefix in [
        ("copy_image", ["self", "source_image_id"]),
        ("attach_targets", ["self", "group_name"]),
    ]:
        params = list(inspect.signature(PATCHES.original(key)).parameters)
        if params[: len(prefix)] != prefix:
            moved.append(f"{key}{params}")
    return moved
