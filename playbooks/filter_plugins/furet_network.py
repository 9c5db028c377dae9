"""Address filters of the firewall role (roles/firewall), with the standard library's
``ipaddress`` only: netaddr is not in furet's venv, and ``ansible.utils.ipaddr`` needs it.

    {{ ['galera', 'backup'] | furet_group_addresses(groups, hostvars) }}
        -> ['10.213.0.21', '10.213.0.22', '10.213.0.23', '10.213.0.61']
    {{ ['10.213.0.1', '10.213.0.0/24', '2001:db8::1'] | furet_nft_elements(4) }}
        -> ['10.213.0.0/24']            (nft refuses overlapping intervals)
    {{ '10.213.0.1' | furet_ip_in_networks(['10.213.0.0/24']) }}   -> True
    {{ ['10.0.0.0/8', 'bastion'] | furet_ip_invalid }}              -> ['bastion']

A host's addresses are its ``firewall_addresses`` (every source address of a multi-homed
host), else its ``ansible_host``, else its inventory name; each must be an IP address, and
an error names the host and the variable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: Any) -> Network:
    """``value`` as a network (an address is its /32 or /128); an IPv4-mapped IPv6 address
    (``::ffff:10.0.0.1``, as sshd may report it) is its IPv4 address."""
    text = str(value).strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return ipaddress.ip_network(text, strict=False)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return ipaddress.ip_network(address)


def furet_ip_invalid(values: Iterable[Any]) -> list[str]:
    """The items of ``values`` that are neither an IP address nor a network (CIDR)."""
    bad = []
    for value in values:
        try:
            _network(value)
        except ValueError:
            bad.append(str(value))
    return bad


def furet_ip_in_networks(address: Any, networks: Iterable[Any]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (False for an address that is none)."""
    try:
        ip = _network(address).network_address
    except ValueError:
        return False
    found = False
    for item in networks:
        try:
            network = _network(item)
        except ValueError as exc:
            raise AnsibleFilterError(f"furet_ip_in_networks: {item!r} is not a network") from exc
        found = found or (network.version == ip.version and ip in network)
    return found


def furet_group_addresses(group_names: Sequence[str], groups: Mapping[str, Sequence[str]],
                          hostvars: Mapping[str, Any]) -> list[str]:
    """The addresses of every host of ``group_names`` (groups missing from the inventory add
    nothing), sorted, once each."""
    found: set[str] = set()
    for group in group_names:
        for host in groups.get(group, []):
            variables = hostvars[host]
            addresses = variables.get("firewall_addresses") or [
                variables.get("ansible_host") or host]
            if isinstance(addresses, str):
                raise AnsibleFilterError(f"host {host}: firewall_addresses must be a list, "
                                         f"not the string {addresses!r}")
            for address in addresses:
                try:
                    ipaddress.ip_address(str(address).strip())
                except ValueError:
                    raise AnsibleFilterError(
                        f"host {host}: {address!r} is not an IP address: the firewall needs "
                        f"the host's addresses; set firewall_addresses (a list of IPs) for "
                        f"{host}") from None
                found.add(str(address).strip())
    return sorted(found, key=lambda a: ipaddress.ip_address(a).packed.rjust(16, b"\0"))


def furet_nft_elements(values: Iterable[Any], family: int) -> list[str]:
    """The elements of an nft interval set of IPv``family`` holding ``values``, sorted: a
    network or address inside another is left out (nft refuses "conflicting intervals");
    adjacent ones stay apart, as written, for a reader. A single address is written bare."""
    networks: list[Network] = []
    for value in values:
        try:
            network = _network(value)
        except ValueError as exc:
            raise AnsibleFilterError(f"{value!r} is not an IP address or network") from exc
        if network.version == family:
            networks.append(network)
    # widest first, so that a network is kept before what it contains
    kept: list[Network] = []
    for network in sorted(set(networks), key=lambda n: (n.prefixlen, n.network_address)):
        if not any(network.subnet_of(wider) for wider in kept):  # type: ignore[arg-type]
            kept.append(network)
    kept.sort(key=lambda n: n.network_address)
    return [str(n.network_address) if n.num_addresses == 1 else str(n) for n in kept]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "furet_ip_invalid": furet_ip_invalid,
            "furet_ip_in_networks": furet_ip_in_networks,
            "furet_group_addresses": furet_group_addresses,
            "furet_nft_elements": furet_nft_elements,
        }
