"""An environment's settings: SSM parameters under /deployer/<app>/<environment>/, applied to
instances at boot by the image's configure unit (no new image needed). A secure value is a
SecureString: decrypted only on the instance, and never printed unless asked (`--reveal`).

A release's identity includes a digest of the settings' names, types and versions (never
their values), so a changed setting makes `deployer release` of the live version roll a new
fleet from the same image.
"""

from __future__ import annotations

import re
from typing import Any

from deployer.aws.ssm import Setting
from deployer.errors import BadInput
from deployer.release.engine import Engine

KEY = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# Written by the bake and the configure unit themselves: a setting may not replace them.
RESERVED = frozenset(
    {"APP_NAME", "VERSION", "ARTIFACT_DIGEST", "APP_DIR", "HOST", "PORT", "INSTANCE_ID"}
    # boot.env's, which the app's unit reads after app.env (the launch template writes it)
    | {"SETTINGS_PATH", "AWS_REGION", "LOG_GROUP"}
)
SECRET = "(secure)"


def settings_path(engine: Engine) -> str:
    return engine.names.settings_path


def check_key(key: str) -> str:
    if not KEY.match(key):
        raise BadInput(
            f"setting '{key}': must be an environment variable name (A-Z, 0-9 and _, not "
            "starting with a digit), as it reaches the app as one"
        )
    if key in RESERVED:
        raise BadInput(f"setting '{key}': deployer sets {key} itself; choose another name")
    return key


def view(setting: Setting, reveal: bool = False) -> dict[str, Any]:
    shown = setting.value if (reveal or not setting.secure) else SECRET
    return {
        "key": setting.name,
        "secure": setting.secure,
        "version": setting.version,
        "value": shown,
    }


def set_setting(engine: Engine, key: str, value: str, secure: bool) -> dict[str, Any]:
    check_key(key)
    engine.check_reachable()
    version = engine.ssm.put(settings_path(engine) + key, value, secure)
    return {"key": key, "secure": secure, "version": version}


def get_setting(engine: Engine, key: str, reveal: bool) -> dict[str, Any]:
    check_key(key)
    engine.check_reachable()
    found = engine.ssm.get(settings_path(engine) + key, decrypt=reveal)
    if found is None:
        raise BadInput(f"setting '{key}' is not set in {settings_path(engine)}")
    return view(found, reveal)


def list_settings(engine: Engine) -> list[dict[str, Any]]:
    engine.check_reachable()
    return [view(s) for s in engine.ssm.settings(settings_path(engine))]


def unset_setting(engine: Engine, key: str) -> bool:
    check_key(key)
    engine.check_reachable()
    return engine.ssm.delete(settings_path(engine) + key)
