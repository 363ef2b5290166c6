"""What a network takes from the account's EC2 quotas, and when a run would pass them."""

from __future__ import annotations

import pytest

from deployer.core.quotas import QuotaUse, network_needs, shortfalls


@pytest.mark.parametrize(
    ("azs", "nat", "existing", "needs"),
    [
        (2, "single", None, (1, 1)),  # a new network: a VPC and one NAT's address
        (3, "per_az", None, (1, 3)),  # one NAT gateway, so one address, per AZ
        (3, "per_az", (3, "per_az"), (0, 0)),  # it exists as asked: nothing new
        (3, "per_az", (2, "single"), (0, 2)),  # widened: the difference
        (2, "single", (3, "per_az"), (0, 0)),  # narrowed: frees addresses, needs none
    ],
)
def test_a_network_needs_a_vpc_and_an_address_per_nat_gateway(azs, nat, existing, needs):
    assert network_needs(azs, nat, existing) == needs


def test_two_per_az_environments_across_three_azs_already_pass_the_default():
    """Two environments hold 6 addresses' worth: the second one's 3 do not fit in 5 - 3."""
    second = QuotaUse("EC2-VPC Elastic IPs", "ec2/L-0263D0A3", 5, in_use=3, needed=3)
    assert shortfalls([second]) == [
        "EC2-VPC Elastic IPs (ec2/L-0263D0A3): this run needs 3, 3 of 5 are in use (2 left)"
    ]
    fits = QuotaUse("VPCs per Region", "vpc/L-F678F1CE", 5, in_use=4, needed=1)
    assert shortfalls([fits]) == []
    raised = QuotaUse("EC2-VPC Elastic IPs", "ec2/L-0263D0A3", 20, in_use=3, needed=3)
    assert shortfalls([raised]) == []
