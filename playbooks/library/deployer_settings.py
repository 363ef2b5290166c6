#!/usr/bin/python
"""Ansible module: the SSM parameters directly under a path, decrypted, as a dict."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deployer_settings
short_description: Read an environment's settings from SSM Parameter Store
description:
  - Returns every parameter directly under I(path) as a dict of name to value, with
    SecureString values decrypted. Needs boto3 and credentials (the instance role on EC2).
options:
  path:
    description: The path, e.g. /deployer/app/environment/
    type: str
    required: true
  region:
    description: The region; default from the environment or the instance.
    type: str
    required: false
author: deployer
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str", "required": True},
            "region": {"type": "str", "required": False},
        },
        supports_check_mode=True,
    )
    try:
        import boto3
    except ImportError:
        module.fail_json(msg="boto3 is needed on the instance (package python3-boto3)")
    path = module.params["path"]
    if not path.endswith("/"):
        path += "/"
    try:
        ssm = boto3.client("ssm", region_name=module.params.get("region") or None)
        settings = {}
        pages = ssm.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=False, WithDecryption=True
        )
        for page in pages:
            for parameter in page["Parameters"]:
                settings[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    except Exception as exc:  # noqa: BLE001 - the module reports, Ansible fails the task
        module.fail_json(msg=f"reading the settings under {path} failed: {type(exc).__name__}")
    module.exit_json(changed=False, settings=settings)


if __name__ == "__main__":
    main()
