"""A builder's SSH host keys, as cloud-init prints them to the console, and the known_hosts
lines that pin them. Pure.

cloud-init writes, once per instance, between markers (each line may carry a syslog prefix
such as "<14>Apr  9 22:06:30 ec2: ", depending on the version):

    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3Nz... root@ip-10-0-0-1
    -----END SSH HOST KEY KEYS-----
"""

from __future__ import annotations

import re
from collections.abc import Sequence

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")
_KEY = re.compile(r"(" + "|".join(re.escape(t) for t in KEY_TYPES) + r") ([A-Za-z0-9+/=]{40,})")


def host_keys_from_console(text: str) -> list[str]:
    """The "type base64" host keys between the markers; [] until cloud-init has printed them."""
    start = text.rfind(BEGIN)
    end = text.find(END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return []
    return [f"{m.group(1)} {m.group(2)}" for m in _KEY.finditer(text[start:end])]


def known_hosts(host: str, port: int, keys: Sequence[str]) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return "".join(f"{name} {key}\n" for key in keys)


def console_text(keys: Sequence[str], prefix: str = "ec2: ") -> str:
    """What cloud-init prints for `keys` (the sandbox answers GetConsoleOutput with it)."""
    lines = [BEGIN, *(f"{key} root@builder" for key in keys), END]
    return "".join(f"{prefix}{line}\n" for line in lines)
