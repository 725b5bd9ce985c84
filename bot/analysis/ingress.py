"""Where traffic to the service is expected to come from: Cloudflare's edge by default.

The ranges are Cloudflare's published IPv4 and IPv6 lists; `INGRESS_CIDRS` replaces
them when the service sits behind something else.
"""

import ipaddress
from collections.abc import Sequence

from bot.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CLOUDFLARE_IPV4 = (
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
)
CLOUDFLARE_IPV6 = (
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
)


def ingress_networks(configured: Sequence[str] = ()) -> tuple[Network, ...]:
    """The configured CIDRs, or Cloudflare's when none are configured."""
    texts = configured or (*CLOUDFLARE_IPV4, *CLOUDFLARE_IPV6)
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip()))
        except ValueError:
            raise ConfigError(
                f"INGRESS_CIDRS entries must be CIDRs like 173.245.48.0/20; "
                f"got {text[:50]!r}"
            ) from None
    return tuple(networks)


def is_expected_ingress(ip: str, networks: Sequence[Network]) -> bool:
    """Whether `ip` lies inside one of `networks`."""
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)
