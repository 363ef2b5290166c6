"""Bake (or reuse) the image of one bake key, in every region the config names.

    reuse an image with the key --> (else) take the bake lock of the app and key --> look
    again (another environment may have just made it) --> end leftovers of bakes nobody runs
    --> temporary access --> builder --> playbook --> image --> copies to the other regions

The builder is always terminated and the temporary access always removed: on success, on
failure, on Ctrl-C and SIGTERM. A builder that leaks anyway shuts itself down (and so
terminates) after `bake.max_builder_minutes`. A run killed with SIGKILL leaves them to the
next bake or `deployer gc`, which find them by their tags, whatever their version.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.ec2 import BuilderGone, Ec2
from deployer.aws.s3 import S3
from deployer.aws.ssm import Ssm
from deployer.bake.access import TemporaryAccess
from deployer.bake.artifact import Artifact
from deployer.bake.images import Images
from deployer.bake.key import KEY_TAG, BakeInputs
from deployer.bake.runner import BuilderAccess, run_playbook
from deployer.cli.interrupts import INTERRUPTS
from deployer.core.names import Names, Version
from deployer.errors import BakeFailed, PollTimeout

Reach = Callable[[dict[str, Any], TemporaryAccess], BuilderAccess]
BUILDER_ROLE = "builder"
# After a cancel, how long the builder's end is waited for (its security group can go only
# then): within GitHub's 7.5 s before SIGTERM, once traffic and the journal are done.
INTERRUPTED_WAIT_S = 5.0


@dataclass(frozen=True)
class BakeRequest:
    names: Names
    version: Version
    artifact: Artifact
    bucket: str
    playbook: Path
    base_ami: str
    instance_type: str
    subnet_id: str
    vpc_id: str
    app_port: int
    run_id: str
    regions: tuple[str, ...]
    variables: Mapping[str, Any] = field(default_factory=dict)
    max_builder_minutes: int = 60
    keep_artifacts_days: int = 30
    source_cidr: Callable[[], str] = lambda: "127.0.0.1/32"
    rebake: bool = False

    @property
    def playbook_variables(self) -> dict[str, Any]:
        """What the playbook gets (the artifact's URL aside): part of the bake key. Not the
        version: instances get it at boot, so one build is baked once whatever its name.
        """
        return {
            **self.variables,
            "app_name": self.names.app,
            "app_port": self.app_port,
            "artifact_digest": self.artifact.digest,
        }

    def image_tags(self, inputs: BakeInputs) -> dict[str, str]:
        return {
            "deployer:app": self.names.app,
            "deployer:version": self.version.text,  # the version it was first baked for
            KEY_TAG: inputs.key,
            **inputs.tags,
        }


@dataclass(frozen=True)
class BakedImage:
    image_id: str
    reused: bool
    bake_key: str
    images: dict[str, str]  # region -> image id


def user_data(minutes: int) -> str:
    """The builder shuts itself down after `minutes` (InstanceInitiatedShutdownBehavior
    terminate: it is gone with its cost), whatever becomes of the run that made it. cloud-init
    runs it as a shell script at first boot; the message is quoted for sh, whatever it holds.
    """
    message = shlex.quote(f"deployer: the image builder ran its {int(minutes)} minutes")
    return f"#!/bin/sh\nshutdown -h +{int(minutes)} {message}\n"


class Baker:
    def __init__(
        self,
        ec2_in: Callable[[str], Ec2],
        ssm: Ssm,
        s3: S3,
        reach: Reach,
        bake_lock: Callable[[str], AbstractContextManager[Any]],
        held_elsewhere: Callable[[str], bool],
        report: Callable[[str], None],
        deadline_s: float = 3600,
    ) -> None:
        self._ec2_in = ec2_in
        self._ssm = ssm
        self._s3 = s3
        self._reach = reach
        self._bake_lock = bake_lock
        self._held_elsewhere = held_elsewhere
        self._report = report
        self._deadline_s = deadline_s
        self.deferred: list[Callable[[], None]] = []  # an interrupted bake's last cleanup

    def inputs(self, request: BakeRequest) -> BakeInputs:
        base = self._ssm.resolve_image(request.base_ami)
        return BakeInputs.of(
            base, request.playbook, request.playbook_variables, request.artifact.digest
        )

    def bake_or_reuse(self, request: BakeRequest) -> BakedImage:
        inputs = self.inputs(request)
        images = Images(self._ec2_in, request.regions, request.names.app, self._report)
        ec2 = self._ec2_in(request.regions[0])
        if not request.rebake:
            found = images.find(inputs.key)
            if found is not None and found.get("State") == "available":
                self._end_leftovers_before_reuse(request.names.app, request.regions[0], inputs.key)
                return self._reuse(images, found, request, inputs)
        with self._bake_lock(inputs.key):
            found = None if request.rebake else images.find(inputs.key)
            if found is not None:  # made by another run meanwhile, or left pending by a kill
                if found.get("State") == "pending":
                    self._report(f"bake: image {found['ImageId']} is being made; waiting")
                    ec2.wait_image(found["ImageId"], self._deadline_s)
                self.end_leftovers(request.names.app, request.regions[0])
                return self._reuse(images, found, request, inputs)
            self.end_leftovers(request.names.app, request.regions[0])
            image_id = self._bake(ec2, request, inputs)
            copies = images.copy_everywhere(
                image_id, request.image_tags(inputs), inputs.key, request.run_id
            )
            return BakedImage(image_id, False, inputs.key, copies)

    def _reuse(
        self, images: Images, found: dict[str, Any], request: BakeRequest, inputs: BakeInputs
    ) -> BakedImage:
        self._report(
            f"bake: reusing image {found['ImageId']} (bake key {inputs.key[:12]}) "
            f"for {request.version}"
        )
        copies = images.copy_everywhere(
            found["ImageId"], request.image_tags(inputs), inputs.key, request.run_id
        )
        return BakedImage(found["ImageId"], True, inputs.key, copies)

    def _end_leftovers_before_reuse(self, app: str, region: str, key: str) -> None:
        """The image is there, but a killed run of this key may have left its builder and
        access: taking the key's bake lock waits for that run's lease to run out (or for a
        live run to finish with them), so a rerun ends them however soon it starts. Nothing
        left: no lock, no change.
        """
        if self.left_by(app, region, key):
            with self._bake_lock(key):
                self.end_leftovers(app, region)
        else:
            self.end_leftovers(app, region)  # other keys' leftovers nobody holds

    def left_by(self, app: str, region: str, key: str) -> bool:
        """Whether a run of this bake key left its builder or its access behind (it was
        killed): read only.
        """
        ec2 = self._ec2_in(region)
        owner = {"deployer:app": app, KEY_TAG: key}
        return bool(
            ec2.find_instances({**owner, "deployer:role": BUILDER_ROLE})
            or ec2.find_key_pairs({**owner, "deployer:role": "bake-access"})
            or ec2.find_security_groups({**owner, "deployer:role": "bake-access"})
        )

    def end_leftovers(self, app: str, region: str) -> list[str]:
        """Builders and temporary access of this app that no running bake owns (a killed run
        left them), whatever their version: ended. Another environment's bake in progress
        holds its bake lock, so its builder is never touched.
        """
        ended = []
        ec2 = self._ec2_in(region)
        orphans: dict[str, list[str]] = {}
        for builder in ec2.find_instances({"deployer:role": BUILDER_ROLE, "deployer:app": app}):
            tags = {t["Key"]: t["Value"] for t in builder.get("Tags", [])}
            orphans.setdefault(tags.get(KEY_TAG, ""), []).append(builder["InstanceId"])
        for key, instances in orphans.items():
            if key and self._held_elsewhere(key):
                continue
            self._report(
                f"bake: terminating builders left by an earlier run: {', '.join(instances)}"
            )
            ec2.terminate(instances)
            ended += instances
        if ended:  # their security groups can go once they are gone
            with contextlib.suppress(ClientError, BotoCoreError, PollTimeout):
                ec2.wait_terminated(ended, 300)
        access = {"deployer:role": "bake-access", "deployer:app": app}
        pairs, groups, kept = [], [], []
        for pair in ec2.find_key_pairs(access):
            if not self._held_elsewhere(_tag(pair, KEY_TAG)):
                with contextlib.suppress(ClientError, BotoCoreError):
                    ec2.delete_key_pair(pair["KeyName"])
                    pairs.append(pair["KeyName"])
        for group in ec2.find_security_groups(access):
            if not self._held_elsewhere(_tag(group, KEY_TAG)):
                try:
                    ec2.delete_security_group(group["GroupId"])
                    groups.append(group["GroupId"])
                except (ClientError, BotoCoreError):
                    kept.append(group["GroupId"])  # a builder still shutting down uses it
        said = [f"key pair(s) {', '.join(pairs)}" if pairs else "",
                f"security group(s) {', '.join(groups)}" if groups else ""]  # fmt: skip
        if pairs or groups:
            self._report(
                f"bake: deleted the temporary {' and '.join(w for w in said if w)} an earlier "
                "run left"
            )
        if kept:
            self._report(
                f"bake: security group(s) {', '.join(kept)} still in use by a builder shutting "
                "down: the next bake or `deployer gc` deletes them"
            )
        return ended + pairs + groups

    def _bake(self, ec2: Ec2, request: BakeRequest, inputs: BakeInputs) -> str:
        key = request.names.artifact_key(request.version, request.artifact.digest)
        self._s3.ensure_bucket(request.bucket, request.keep_artifacts_days)
        if not self._s3.exists(request.bucket, key):
            self._s3.upload(request.artifact.path, request.bucket, key, request.artifact.digest)
        owner = {"deployer:app": request.names.app, KEY_TAG: inputs.key}
        access = TemporaryAccess(
            ec2,
            f"deployer-bake-{request.names.app}-{request.run_id}"[:255],
            request.vpc_id,
            request.source_cidr,
            {**owner, "deployer:run": request.run_id},
            self._report,
        )
        builder = ""
        interrupted = False
        try:
            access.create()
            builder = ec2.run_builder(
                image_id=inputs.base_ami,
                instance_type=request.instance_type,
                subnet_id=request.subnet_id,
                security_group_ids=[access.group_id],
                key_name=access.name,
                tags={
                    **owner,
                    "deployer:role": BUILDER_ROLE,
                    "deployer:version": request.version.text,
                    "deployer:run": request.run_id,
                    "Name": f"deployer-builder-{request.names.app}",
                },
                # New for every builder, also when a resumed release runs this bake again: EC2
                # answers a reused token with the first instance (even a terminated one), or
                # IdempotentParameterMismatch.
                token=f"bake-{request.run_id}"[:55] + f"-{secrets.token_hex(4)}",
                user_data=user_data(request.max_builder_minutes),
            )
            self._report(f"bake: builder {builder} from {inputs.base_ami}")
            return self._build(ec2, builder, access, request, inputs, key)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            # Always, also on failure, Ctrl-C and SIGTERM: a forgotten builder costs money. A
            # failure here must not hide why the bake ended; the next run or gc retries it.
            with self._reporting_failure(f"terminating builder {builder}"):
                if builder:
                    ec2.terminate([builder])
                    self._report(f"bake: builder {builder} terminated")
            if interrupted:
                # A cancelled job has seconds left (GitHub: 10 s): the journal and traffic come
                # first. The key pair and the private key go now; the security group, which
                # EC2 frees once the builder is gone, after them (finish_deferred).
                access.remove(keep_group=True)
                self.deferred.append(
                    lambda: self._end_access(ec2, builder, access, INTERRUPTED_WAIT_S)
                )
            else:
                self._end_access(ec2, builder, access, 300)

    def _end_access(
        self, ec2: Ec2, builder: str, access: TemporaryAccess, deadline_s: float
    ) -> None:
        with self._reporting_failure(f"waiting for builder {builder} to terminate"):
            if builder:
                ec2.wait_terminated([builder], deadline_s)
        access.remove()

    def finish_deferred(self) -> None:
        """What an interrupted bake left to do once traffic and the journal are safe: wait for
        the builder to end, then remove its security group. A second signal (or a failure)
        leaves them to the next run or `deployer gc`, which find them by their tags.
        """
        while self.deferred:
            cleanup = self.deferred.pop(0)
            if INTERRUPTS.hurrying:
                self._report("bake: the builder's security group is left for the next run")
                continue
            try:
                cleanup()
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
                self._report(f"bake: cleanup left for the next run or `deployer gc` ({exc})")

    @contextlib.contextmanager
    def _reporting_failure(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, BuilderGone, Exception) as exc:  # noqa: BLE001
            self._report(f"bake: {doing} failed ({exc}); the next run or `deployer gc` ends it")

    def _build(
        self,
        ec2: Ec2,
        builder: str,
        access: TemporaryAccess,
        request: BakeRequest,
        inputs: BakeInputs,
        key: str,
    ) -> str:
        try:
            instance = ec2.wait_running(builder, self._deadline_s)
        except BuilderGone as exc:
            raise BakeFailed(f"bake failed: {exc}") from None
        where = self._reach(instance, access)
        run_playbook(
            request.playbook,
            where,
            {
                **request.playbook_variables,
                "artifact_url": self._s3.presigned_get(request.bucket, key),
            },
            report=self._report,
            sanitize=True,
        )
        name = f"deployer-{request.names.app}-{request.version.slug}-{request.run_id}"[:128]
        image_id = ec2.create_image(
            builder, name, {**request.image_tags(inputs), "deployer:run": request.run_id}
        )
        self._report(f"bake: imaging {builder} as {image_id}")
        try:
            ec2.wait_image(image_id, self._deadline_s)
        except RuntimeError as exc:
            raise BakeFailed(f"bake failed: {exc}") from None
        return image_id


def _tag(resource: Mapping[str, Any], key: str) -> str:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), "")
