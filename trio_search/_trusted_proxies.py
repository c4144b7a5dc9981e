"""Which peers may send a PROXY protocol header: ``--trusted-proxies``.

The PROXY header lets its sender claim any client address, so a server
honours it only from the load balancers it was told to trust. Addresses are
compared as the kernel reports them, with one normalization on both sides:
an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, what a dual-stack socket
reports for an IPv4 peer) is its IPv4 address, and a network inside
``::ffff:0:0/96`` is the IPv4 network it maps.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import attrs

from ._errors import ConfigurationError, excerpt

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The IPv4-mapped IPv6 addresses (RFC 4291, section 2.5.5.2).
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmap_network(network: _Network) -> _Network:
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _unmap_address(address: _Address) -> _Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _as_networks(networks: Iterable[_Network]) -> tuple[_Network, ...]:
    return tuple(_unmap_network(network) for network in networks)


@attrs.frozen
class TrustedProxies:
    """The networks whose peers may send a PROXY header.

    Attributes:
        networks: IPv4 and IPv6 networks, IPv4-mapped ones as IPv4.
    """

    networks: tuple[_Network, ...] = attrs.field(converter=_as_networks)

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """Read the value of ``--trusted-proxies``: CIDRs separated by commas.

        Each item is an IPv4 or IPv6 network (``10.0.0.0/8``, ``fd00::/8``)
        or a single address (``127.0.0.1``, a /32); host bits are allowed
        and cleared (``10.1.2.3/8`` is ``10.0.0.0/8``). Spaces around items
        are ignored.

        Raises:
            ConfigurationError: code ``"bad_trusted_proxies"``: no item, an
                empty item, or an item that is not a network.
        """
        networks: list[_Network] = []
        items = value.split(",")
        for item in items:
            text = item.strip()
            if not text:
                if len(items) == 1:
                    raise ConfigurationError(
                        "--trusted-proxies: no network given; expected CIDRs separated "
                        "by commas, like 10.0.0.0/8,fd00::/8",
                        code="bad_trusted_proxies",
                    )
                raise ConfigurationError(
                    f"--trusted-proxies: empty item in {excerpt(repr(value))}",
                    code="bad_trusted_proxies",
                )
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ConfigurationError(
                    f"--trusted-proxies: {excerpt(repr(text))} is not an IPv4 or IPv6 network in "
                    f"CIDR notation, like 10.0.0.0/8 or fd00::/8",
                    code="bad_trusted_proxies",
                ) from None
            networks.append(network)
        return cls(networks)

    def is_trusted(self, address: str) -> bool:
        """Whether a peer at ``address`` may send a PROXY header.

        Args:
            address: The peer's host as the socket reports it: IPv4, IPv6
                (a zone such as ``%eth0`` is ignored), or IPv4-mapped IPv6.

        Returns:
            True if it lies in one of :attr:`networks`; False otherwise, and
            for anything that is not an IP address (an AF_UNIX peer).
        """
        try:
            parsed = _unmap_address(ipaddress.ip_address(address))
        except ValueError:
            return False
        return any(parsed in network for network in self.networks)
