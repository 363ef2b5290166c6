"""An app's images by bake key, in every region the config names. The first region is where
images are baked; the others get copies, made in parallel and tagged as they are made
(CopyImage's TagSpecifications, image and snapshots), each waited on with our poller. A region
that fails is named, and nothing goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.ec2 import Ec2
from deployer.bake.key import KEY_TAG
from deployer.errors import CopyFailed, PollTimeout

COPY_DEADLINE_S = 3600


class Images:
    def __init__(
        self,
        ec2_in: Callable[[str], Ec2],
        regions: tuple[str, ...],
        app: str,
        report: Callable[[str], None],
    ) -> None:
        self._ec2_in = ec2_in
        self.regions = regions
        self._app = app
        self._report = report

    def find(self, bake_key: str, region: str | None = None) -> dict[str, Any] | None:
        """The newest usable (available or pending) image with the key, in `region`."""
        ec2 = self._ec2_in(region or self.regions[0])
        found = ec2.images_of({"deployer:app": self._app, KEY_TAG: bake_key})
        usable = [i for i in found if i.get("State") in ("available", "pending")]
        return usable[0] if usable else None

    def copy_everywhere(
        self, image_id: str, tags: Mapping[str, str], bake_key: str, run_id: str
    ) -> dict[str, str]:
        """Region -> image id, the bake region's included. Existing copies are reused."""
        home = self.regions[0]
        others = self.regions[1:]
        result = {home: image_id}
        if not others:
            return result
        with ThreadPoolExecutor(max_workers=len(others)) as pool:
            futures = {
                region: pool.submit(self._copy, region, image_id, tags, bake_key, run_id)
                for region in others
            }
        failures = []
        for region, future in futures.items():
            try:
                result[region] = future.result()
            except (ClientError, BotoCoreError, PollTimeout, RuntimeError) as exc:
                failures.append(f"{region}: {exc}")
        if failures:
            raise CopyFailed(f"copying image {image_id} failed in {'; '.join(failures)}")
        return result

    def _copy(
        self, region: str, image_id: str, tags: Mapping[str, str], bake_key: str, run_id: str
    ) -> str:
        ec2 = self._ec2_in(region)
        existing = self.find(bake_key, region)
        if existing is not None:
            copy = str(existing["ImageId"])
        else:
            name = f"deployer-{self._app}-{bake_key[:16]}-{run_id}"[:128]
            token = f"{bake_key[:32]}-{run_id}"
            labels = {**tags, "deployer:copied-from": image_id}
            copy = ec2.copy_image(image_id, self.regions[0], name, token, labels)
            self._report(f"bake: copying {image_id} to {region} as {copy}")
        ec2.wait_image(copy, COPY_DEADLINE_S)
        return copy
