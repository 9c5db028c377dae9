"""The cassandra role's cassandra.yaml for the lab nodes, rendered by Ansible's own templating
from the lab inventory (group_vars, host vars), the role's defaults and vars, as the role's
template task would: internode and client encryption with the PEM keystore the role deploys,
plaintext refused (``optional: false`` written, see the role's defaults), and the switches
that turn it off or open the three rolling passes of a plaintext ring."""

from __future__ import annotations

import pytest

from tests.cassandra_role import render

PEM_FACTORY = {"class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"}


@pytest.mark.parametrize("host", ["cassandra1", "cassandra3"])
def test_lab_nodes_encrypt_internode_and_client_traffic_and_refuse_plaintext(host: str) -> None:
    conf = render(host)
    assert conf["server_encryption_options"] == {
        "internode_encryption": "all",
        "optional": False,                       # unset, 5.0.9 would accept plaintext
        "legacy_ssl_storage_port_enabled": False,
        "ssl_context_factory": PEM_FACTORY,
        "keystore": "/etc/cassandra/tls/node.pem",
        "truststore": "/etc/cassandra/tls/ca.crt",
        "require_client_auth": True,
        "require_endpoint_verification": True,
    }
    assert conf["client_encryption_options"] == {
        "enabled": True,
        "optional": False,
        "ssl_context_factory": PEM_FACTORY,
        "keystore": "/etc/cassandra/tls/node.pem",
        "truststore": "/etc/cassandra/tls/ca.crt",
        "require_client_auth": False,
    }
    # The lab's packet capture looks for literal markers in the inter-DC traffic.
    assert conf["internode_compression"] == "none"
    assert conf["listen_address"] == {"cassandra1": "10.213.0.31",
                                      "cassandra3": "10.213.0.33"}[host]


def test_endpoint_verification_and_the_directory_are_switches() -> None:
    conf = render("cassandra1", cassandra_tls_require_endpoint_verification=False,
                  cassandra_tls_dir="/srv/tls")
    server = conf["server_encryption_options"]
    assert server["require_endpoint_verification"] is False
    assert (server["keystore"], server["truststore"]) == ("/srv/tls/node.pem", "/srv/tls/ca.crt")
    assert conf["client_encryption_options"]["keystore"] == "/srv/tls/node.pem"


def test_the_first_pass_on_a_plaintext_ring_accepts_both() -> None:
    """Turning TLS on for a running plaintext ring, pass 1: keystore loaded, nothing sent
    encrypted yet, both accepted (README: three rolling passes)."""
    conf = render("cassandra1", cassandra_internode_encryption="none", cassandra_tls_optional=True)
    assert conf["server_encryption_options"]["internode_encryption"] == "none"
    assert conf["server_encryption_options"]["optional"] is True
    assert conf["client_encryption_options"]["optional"] is True
    assert conf["client_encryption_options"]["enabled"] is True


def test_without_tls_no_encryption_option_is_written() -> None:
    conf = render("cassandra1", cassandra_tls=False)
    assert "server_encryption_options" not in conf
    assert "client_encryption_options" not in conf
