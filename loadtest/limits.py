"""File-descriptor limit and loopback source addresses: the two things that
stop one machine from opening 10,000+ client sockets.
"""

from __future__ import annotations

import ipaddress
import resource

FD_RESERVE = 64  # files a worker needs besides its sockets


class LimitTooLow(Exception):
    """RLIMIT_NOFILE's hard limit is below what the run needs."""


def raise_nofile(needed: int) -> int:
    """Raise the soft limit towards the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + FD_RESERVE
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        raise LimitTooLow(
            f"open-file limit too low: a worker needs {want} descriptors, the hard limit is {hard}. "
            f"Raise it (ulimit -Hn {want} as root, or LimitNOFILE= in systemd) or spread the "
            f"connections with --workers {-(-want // max(1, hard - FD_RESERVE))} or more."
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source_addresses(host: str, spec: str) -> tuple[str, ...]:
    """``auto``: 127.0.0.1-8 when the target is loopback, else none; ``0``: none;
    a number N: 127.0.0.1..N; or a comma-separated list."""
    spec = spec.strip()
    if spec in ("0", "none", ""):
        return ()
    if spec == "auto":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        return tuple(f"127.0.0.{k}" for k in range(1, 9)) if loopback else ()
    if spec.isdigit():
        n = int(spec)
        if not 1 <= n <= 254:
            raise ValueError("--sources N must be 1..254")
        return tuple(f"127.0.0.{k}" for k in range(1, n + 1))
    out = []
    for part in spec.split(","):
        out.append(str(ipaddress.ip_address(part.strip())))
    return tuple(out)
