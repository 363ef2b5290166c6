"""Bake or reuse the image for (app, version, artifact digest).

The builder instance is always terminated: on success, on failure and on Ctrl-C. A builder
left by a killed earlier run is found by its tags and terminated before a new one starts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.ec2 import Ec2
from deployer.aws.s3 import S3
from deployer.aws.ssm import Ssm
from deployer.bake.artifact import Artifact
from deployer.bake.runner import BakeFailed, BuilderAccess, run_playbook
from deployer.core.names import Names, Version

AccessFor = Callable[[dict[str, Any]], BuilderAccess]


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
    security_group_id: str
    key_name: str | None
    app_port: int
    release_id: str

    @property
    def image_tags(self) -> dict[str, str]:
        return {
            "deployer:app": self.names.app,
            "deployer:version": self.version.text,
            "deployer:digest": self.artifact.digest,
        }

    @property
    def builder_tags(self) -> dict[str, str]:
        return {
            "deployer:role": "builder",
            "deployer:app": self.names.app,
            "deployer:digest": self.artifact.digest,
        }


@dataclass(frozen=True)
class BakedImage:
    image_id: str
    reused: bool


class Baker:
    def __init__(
        self,
        ec2: Ec2,
        ssm: Ssm,
        s3: S3,
        access_for: AccessFor,
        report: Callable[[str], None],
        deadline_s: float = 1800,
    ) -> None:
        self._ec2 = ec2
        self._ssm = ssm
        self._s3 = s3
        self._access_for = access_for
        self._report = report
        self._deadline_s = deadline_s

    def find(self, request: BakeRequest) -> str | None:
        image = self._ec2.find_image(request.image_tags)
        return str(image["ImageId"]) if image else None

    def bake_or_reuse(self, request: BakeRequest) -> BakedImage:
        existing = self._ec2.find_image(request.image_tags)
        if existing is not None:
            if existing.get("State") == "pending":
                # A killed run left it being made: wait for it, then end its builder.
                self._report(f"bake: image {existing['ImageId']} is still being made; waiting")
                self._ec2.wait_image(existing["ImageId"], self._deadline_s)
            # A run killed while imaging leaves its builder running, also once the image is
            # done: end it.
            self._terminate_leftovers(request)
            self._report(
                f"bake: reusing image {existing['ImageId']} for {request.version} "
                f"({request.artifact.digest[:12]})"
            )
            return BakedImage(existing["ImageId"], reused=True)
        key = request.names.artifact_key(request.version, request.artifact.digest)
        self._s3.ensure_bucket(request.bucket)
        if not self._s3.exists(request.bucket, key):
            self._s3.upload(request.artifact.path, request.bucket, key, request.artifact.digest)
        base = self._ssm.resolve_image(request.base_ami)
        self._terminate_leftovers(request)
        builder = self._ec2.run_builder(
            image_id=base,
            instance_type=request.instance_type,
            subnet_id=request.subnet_id,
            security_group_ids=[request.security_group_id],
            key_name=request.key_name,
            tags={
                **request.builder_tags,
                "Name": f"deployer-builder-{request.names.app}",
                "deployer:release-id": request.release_id,
            },
            # New for every builder: EC2 answers a reused token with the first instance, even
            # a terminated one, so a rerun of the same release must not reuse it.
            token=f"bake-{request.release_id}-{secrets.token_hex(4)}"[:64],
        )
        self._report(f"bake: builder {builder} from {base}")
        try:
            return BakedImage(self._build(builder, request, key), reused=False)
        finally:
            # Always, also on failure and Ctrl-C: a forgotten builder costs money. A failure
            # to terminate must not hide why the bake ended; the next run retries it.
            try:
                self._ec2.terminate([builder])
                self._report(f"bake: builder {builder} terminated")
            except (ClientError, BotoCoreError) as exc:
                self._report(
                    f"bake: terminating builder {builder} failed ({exc}); "
                    "the next run terminates it"
                )

    def _terminate_leftovers(self, request: BakeRequest) -> None:
        leftovers = [i["InstanceId"] for i in self._ec2.find_instances(request.builder_tags)]
        if leftovers:
            self._report(
                f"bake: terminating builders left by an earlier run: {', '.join(leftovers)}"
            )
            self._ec2.terminate(leftovers)

    def _build(self, builder: str, request: BakeRequest, key: str) -> str:
        instance = self._ec2.wait_running(builder, self._deadline_s)
        access = self._access_for(instance)
        run_playbook(
            request.playbook,
            access,
            {
                "app_name": request.names.app,
                "app_version": request.version.text,
                "app_port": request.app_port,
                "artifact_digest": request.artifact.digest,
                "artifact_url": self._s3.presigned_get(request.bucket, key),
            },
            report=self._report,
        )
        name = request.names.image_name(request.version, request.artifact.digest)
        image_id = self._ec2.create_image(
            builder, name, {**request.image_tags, "deployer:release-id": request.release_id}
        )
        self._report(f"bake: imaging {builder} as {image_id}")
        try:
            self._ec2.wait_image(image_id, self._deadline_s)
        except RuntimeError as exc:
            raise BakeFailed(f"bake failed: {exc}") from None
        return image_id
