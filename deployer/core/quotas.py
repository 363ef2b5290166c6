"""EC2 quotas a run would pass: what it will make, against what the account has left.

An environment's network takes one VPC (default quota: 5 per Region) and one Elastic IP per
NAT gateway (1 with network.nat: single, one per AZ with per_az; default quota: 5 per
Region). Two per_az environments across three AZs already need 6. A release starts a new
fleet beside the live one, and a bake a builder: their vCPUs count against the Region's
running On-Demand quota of their instance family (standard: A, C, D, H, I, M, R, T, Z).
Pure: no AWS here.
"""

from __future__ import annotations

from dataclasses import dataclass

VPCS = ("vpc", "L-F678F1CE", "VPCs per Region", 5.0)
ADDRESSES = ("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs", 5.0)
# Counted in vCPUs; an account's value is always applied (no default is guessed here).
STANDARD_VCPUS = (
    "ec2",
    "L-1216C47A",
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)",
)
# Families whose first letter is a standard one but whose instances have quotas of their own.
NOT_STANDARD = ("dl", "hpc", "inf", "mac", "trn", "u-")


def is_standard(instance_type: str) -> bool:
    """Whether `instance_type` counts against the standard On-Demand vCPU quota."""
    family = instance_type.split(".", 1)[0]
    return family[:1] in "acdhimrtz" and not family.startswith(NOT_STANDARD)


def standard_vcpus(running: dict[str, int], vcpus: dict[str, int]) -> int:
    """vCPUs of the standard instances among `running` (type -> count)."""
    return sum(n * vcpus.get(t, 0) for t, n in running.items() if is_standard(t))


def release_vcpus(
    desired: int, fleet_type: str, builder_type: str | None, vcpus: dict[str, int]
) -> int:
    """The standard vCPUs a release starts beside what runs: the new fleet at its desired
    capacity, and a builder when it bakes (`builder_type` None: it does not).
    """
    need = desired * vcpus.get(fleet_type, 0) if is_standard(fleet_type) else 0
    if builder_type is not None and is_standard(builder_type):
        need += vcpus.get(builder_type, 0)
    return need


@dataclass(frozen=True)
class QuotaUse:
    name: str  # as Service Quotas names it
    code: str  # service/quota code, e.g. ec2/L-0263D0A3
    limit: float  # the applied quota
    in_use: int
    needed: int  # what this run will make

    @property
    def left(self) -> int:
        return max(0, int(self.limit) - self.in_use)

    @property
    def short(self) -> bool:
        return self.needed > self.left


def network_needs(azs: int, nat: str, existing: tuple[int, str] | None) -> tuple[int, int]:
    """(VPCs, Elastic IPs) a network stack of `azs` and `nat` makes; `existing` is the
    (AzCount, NatMode) of the stack as it is, if it exists (an update adds the difference).
    """
    wanted = azs if nat == "per_az" else 1
    if existing is None:
        return 1, wanted
    had = existing[0] if existing[1] == "per_az" else 1
    return 0, max(0, wanted - had)


def shortfalls(uses: list[QuotaUse]) -> list[str]:
    """Each quota the run would pass, with its numbers."""
    return [
        f"{u.name} ({u.code}): this run needs {u.needed}, {u.in_use} of {u.limit:g} are in "
        f"use ({u.left} left)"
        for u in uses
        if u.short
    ]
