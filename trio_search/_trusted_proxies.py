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

from . import _codes as codes
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


#: How a network is written, for the messages about one that is not.
_NETWORK_EXAMPLE = "in CIDR notation, like 10.0.0.0/8 or fd00::/8"


def _network(item: object) -> _Network:
    """One network: an ``ipaddress`` network or address, or its text (a
    CIDR, or one address, a /32 or /128); host bits are cleared.

    Raises:
        ValueError: with the reason, quoting the item.
    """
    if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return item
    if isinstance(item, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            return ipaddress.ip_network(item, strict=False)
        except ValueError:
            pass
    raise ValueError(f"{excerpt(repr(item))} is not an IPv4 or IPv6 network {_NETWORK_EXAMPLE}")


def _as_networks(networks: Iterable[_Network | _Address | str]) -> tuple[_Network, ...]:
    if isinstance(networks, str):
        raise ValueError(
            f"networks must be a list of networks, not the string {excerpt(repr(networks))} "
            "(TrustedProxies.parse reads CIDRs separated by commas)"
        )
    return tuple(_unmap_network(_network(network)) for network in networks)


def parse_networks(value: str) -> list[_Network]:
    """The networks of CIDRs separated by commas (see :meth:`TrustedProxies.parse`).

    Raises:
        ValueError: with the reason.
    """
    items = value.split(",")
    networks: list[_Network] = []
    for item in items:
        text = item.strip()
        if not text:
            if len(items) == 1:
                raise ValueError(
                    "no network given; expected CIDRs separated by commas, like 10.0.0.0/8,fd00::/8"
                )
            raise ValueError(f"empty item in {excerpt(repr(value))}")
        networks.append(_network(text))
    return networks


@attrs.frozen
class TrustedProxies:
    """The networks whose peers may send a PROXY header
    (``ServerSettings.trusted_proxies``).

    Example::

        TrustedProxies.parse("10.0.0.0/8,fd00::/8")
        TrustedProxies([ipaddress.ip_network("10.0.0.0/8"), "fd00::/8"])

    Attributes:
        networks: IPv4 and IPv6 networks, IPv4-mapped ones as IPv4. Given
            as a list of networks, addresses or their text (a CIDR, or one
            address); host bits are cleared.

    Raises:
        ValueError: an item that is not a network, or a string given
            instead of a list.
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
        try:
            return cls(parse_networks(value))
        except ValueError as exc:
            raise ConfigurationError(
                f"--trusted-proxies: {exc}", code=codes.BAD_TRUSTED_PROXIES
            ) from None

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
