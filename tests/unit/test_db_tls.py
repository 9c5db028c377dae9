"""furet's MariaDB client TLS: the verifying context built from the settings (CA, the name
checked instead of the address connected to) and the one-line errors of a failed TLS
connection. The real handshakes are proven on the lab (tests/lab/test_security.py)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pymysql
import pytest

from migration.config import DbSettings, FuretConfig, load_config
from migration.db import db_error, tls_context
from migration.errors import FuretError


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=test CA", "-days", "1",
                    "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt")],
                   check=True, capture_output=True, timeout=30)
    return directory / "ca.crt"


def test_no_ca_no_tls_setting() -> None:
    assert tls_context(DbSettings("target")) is None


def test_a_ca_makes_a_verifying_context_that_checks_the_service_name(ca_file: Path) -> None:
    settings = DbSettings("target", "127.0.0.1", ssl_ca=str(ca_file),
                          ssl_server_name="galera.furet.internal")
    context = tls_context(settings)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.server_name == "galera.furet.internal"
    # the chain only, when told not to check names
    loose = tls_context(DbSettings("target", ssl_ca=str(ca_file), ssl_verify_identity=False))
    assert loose is not None and loose.verify_mode == ssl.CERT_REQUIRED
    assert not loose.check_hostname


def test_a_missing_ca_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FuretError) as error:
        tls_context(DbSettings("legacy", "10.0.0.5", ssl_ca=str(tmp_path / "nope.crt")))
    assert str(error.value).startswith(f"legacy 10.0.0.5:3306: TLS CA file {tmp_path}")
    assert "\n" not in str(error.value)


def test_tls_settings_come_from_furet_yml(tmp_path: Path) -> None:
    path = tmp_path / "furet.yml"
    path.write_text("target:\n  ssl_ca: /etc/furet/tls/ca.crt\n"
                    "  ssl_server_name: galera.furet.internal\n")
    config = load_config(str(path), env={"FURET_LEGACY_SSL_CA": "/x/legacy-ca.crt"})
    assert config.target.ssl_ca == "/etc/furet/tls/ca.crt"
    assert config.target.ssl_server_name == "galera.furet.internal"
    assert config.legacy.ssl_ca == "/x/legacy-ca.crt" and config.legacy.ssl_verify_identity


def _operational(code: int, message: str, original: BaseException | None = None) -> Exception:
    exc = pymysql.err.OperationalError(code, message)
    if original is not None:
        exc.original_exception = original  # type: ignore[attr-defined]
    return exc


def test_a_certificate_that_does_not_verify_names_the_ca_and_the_name() -> None:
    settings = DbSettings("target", "127.0.0.1", password="s3cret", ssl_ca="/etc/furet/tls/ca.crt",
                          ssl_server_name="galera.furet.internal")
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_message = ("Hostname mismatch, certificate is not valid for "
                              "'galera.furet.internal'.")
    error = db_error(_operational(2003, "Can't connect to MySQL server on '127.0.0.1' "
                                        "([SSL: CERTIFICATE_VERIFY_FAILED] ...)", failure),
                     settings, "lf_runtime")
    assert str(error) == (
        "target 127.0.0.1:3306 database lf_runtime: TLS: Hostname mismatch, certificate is not "
        "valid for 'galera.furet.internal'. (CA /etc/furet/tls/ca.crt, name "
        "galera.furet.internal)")


def test_access_denied_without_a_ca_hints_at_tls() -> None:
    plain = db_error(_operational(1045, "Access denied for user 'furet'@'10.0.0.9'"),
                     DbSettings("target", "10.0.0.8"))
    assert str(plain) == ("target 10.0.0.8:3306: access denied for user 'furet' (if the "
                          "server requires TLS: set target.ssl_ca)")
    with_tls = db_error(_operational(1045, "Access denied"),
                        DbSettings("target", "10.0.0.8", ssl_ca="/ca.crt"))
    assert str(with_tls) == "target 10.0.0.8:3306: access denied for user 'furet'"


def test_an_address_no_account_names_is_one_line_naming_the_setting() -> None:
    error = db_error(_operational(1130, "Host '10.0.0.7' is not allowed to connect"),
                     DbSettings("target", "10.0.0.8", ssl_ca="/ca.crt"))
    assert str(error) == ("target 10.0.0.8:3306: this client's address is not allowed (the "
                          "server's accounts are bound to other hosts: the inventory's "
                          "galera_users or legacy_mysql_users hosts)")


def test_the_dump_refuses_a_name_it_cannot_check(tmp_path: Path) -> None:
    from migration.backup.legacy import client_option_file

    settings = DbSettings("legacy", "10.0.0.5", password="pw", ssl_ca="/ca.crt",
                          ssl_server_name="db.example")
    with pytest.raises(FuretError) as error:
        client_option_file(settings, tmp_path)
    assert str(error.value) == (
        "legacy 10.0.0.5:3306: mariadb-dump checks the certificate against the host it "
        "connects to, not legacy.ssl_server_name 'db.example': set legacy.host to that name")
    written = client_option_file(DbSettings("legacy", "10.0.0.5", password="pw",
                                            ssl_ca="/ca.crt"), tmp_path).read_text()
    assert "\nssl\nssl-ca=\"/ca.crt\"\nssl-verify-server-cert\n" in written


def test_the_backup_refuses_that_name_before_it_connects(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from migration.backup import legacy

    def connect(settings: DbSettings) -> None:
        raise AssertionError(f"connected to {settings.host}")

    monkeypatch.setattr(legacy, "connect", connect)
    config = FuretConfig(legacy=DbSettings("legacy", "10.0.0.5", password="pw",
                                           ssl_ca="/ca.crt", ssl_server_name="db.example"))
    with pytest.raises(FuretError, match="not legacy.ssl_server_name 'db.example'"):
        legacy.backup_legacy(config, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()
