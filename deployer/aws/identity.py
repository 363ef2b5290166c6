"""AWS's own conventions for where and as whom deployer acts, as the SDKs and the CLI follow
them:

- the region: deployer.yaml's `target.region`, else AWS_REGION, else AWS_DEFAULT_REGION, else
  the profile's `region` (~/.aws/config);
- the profile: `target.profile` is used unless the environment already holds credentials
  (AWS_ACCESS_KEY_ID, or a web identity token as OIDC in CI gives), which then win, as they
  would for the AWS CLI with no --profile;
- the credentials' expiry, where they cannot renew themselves (environment credentials with
  AWS_CREDENTIAL_EXPIRATION, which botocore reads): a release must end before they do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError

REGION_SOURCES = (
    "target.region in deployer.yaml, AWS_REGION or AWS_DEFAULT_REGION in the environment, "
    "or a region in the AWS profile (~/.aws/config)"
)
# Credentials botocore renews by itself (re-assuming a role, re-reading a token file or the
# instance metadata): their expiry is not the end of the run's access.
RENEWING_METHODS = frozenset(
    {
        "assume-role",
        "assume-role-with-web-identity",
        "custom-process",
        "sso",
        "container-role",
        "iam-role",
        "explicit",
    }
)


@dataclass(frozen=True)
class Identity:
    """How the session is made: the region, the profile (None: the default chain), and why a
    configured profile was set aside.
    """

    region: str | None
    profile: str | None
    warning: str = ""


def environment_credentials(env: Mapping[str, str]) -> str:
    """The environment variable that holds credentials, or ''."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return "AWS_ACCESS_KEY_ID"
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return "AWS_WEB_IDENTITY_TOKEN_FILE"
    return ""


def resolve(
    region: str | None, profile: str | None, env: Mapping[str, str] | None = None
) -> Identity:
    env = os.environ if env is None else env
    warning = ""
    held = environment_credentials(env)
    if profile and held:
        warning = (
            f"target.profile '{profile}' is ignored: the environment holds credentials "
            f"({held}), as in CI with OIDC"
        )
        profile = None
    found = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    if found is None:
        found = profile_region(profile)
    return Identity(found, profile, warning)


def profile_region(profile: str | None) -> str | None:
    """The region the profile (or the default one) names in ~/.aws/config, if any."""
    try:
        return boto3.Session(profile_name=profile).region_name or None
    except BotoCoreError:
        return None


def expiry(session: Any) -> datetime | None:
    """When the session's credentials end for good, or None (no expiry, or they renew)."""
    try:
        credentials = session.get_credentials()
    except BotoCoreError:
        return None
    if credentials is None or getattr(credentials, "method", "") in RENEWING_METHODS:
        return None
    # botocore keeps the expiry in a private attribute; the AWS CLI's export-credentials
    # reads it the same way (botocore/botocore#2694).
    expires = getattr(credentials, "_expiry_time", None)
    return expires if isinstance(expires, datetime) else None
