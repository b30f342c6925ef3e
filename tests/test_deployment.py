"""docker-compose.yml, Dockerfile and .env.example agree with the code (no Docker engine here)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import AliasChoices

from avisa.cli import DEFAULT_PORTS, _parser

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("events", "rules", "notifier")
PROCESSES = (*SERVICES, "console")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def known_variables() -> set[str]:
    """Every environment variable some service's Settings reads."""
    names: set[str] = set()
    for service in PROCESSES:
        settings = importlib.import_module(f"services.{service}.config").Settings
        prefix = settings.model_config.get("env_prefix", "")
        for field_name, info in settings.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names |= {c.upper() for c in alias.choices if isinstance(c, str)}
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(f"{prefix}{field_name}".upper())
    return names


def test_compose_file_follows_the_compose_specification(compose):
    schema = json.loads((ROOT / "tests/specs/compose-spec.json").read_text())
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []


def test_kafka_runs_in_kraft_mode_with_a_healthcheck(compose):
    kafka = compose["services"]["kafka"]
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka["environment"]
    assert kafka["healthcheck"]["test"]
    assert compose["services"]["postgres"]["healthcheck"]["test"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_command_port_and_variables_match_the_code(compose, service):
    definition = compose["services"][service]
    args = _parser().parse_args(definition["command"])
    assert (args.command, args.service) == ("serve", service)
    assert args.port == DEFAULT_PORTS[service]
    assert definition["ports"] == [f"{args.port}:{args.port}"]
    assert str(args.port) in " ".join(definition["healthcheck"]["test"])
    assert definition["build"] == "."
    assert set(definition["environment"]) <= known_variables()
    assert definition["environment"]["AVISA_DATABASE_URL"].startswith("postgresql+psycopg://")
    bootstrap = definition["environment"]["AVISA_KAFKA_BOOTSTRAP"]
    listeners = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{bootstrap}" in listeners
    for dependency in ("kafka", "postgres"):
        assert definition["depends_on"][dependency]["condition"] == "service_healthy"


def test_the_console_calls_the_services_by_their_compose_names(compose):
    definition = compose["services"]["console"]
    args = _parser().parse_args(definition["command"])
    assert (args.command, args.service, args.port) == ("serve", "console", DEFAULT_PORTS["console"])
    assert definition["ports"] == ["8000:8000"]
    assert "8000" in " ".join(definition["healthcheck"]["test"])
    assert set(definition["environment"]) <= known_variables()
    assert definition["environment"]["AVISA_DATABASE_URL"].startswith("postgresql+psycopg://")
    for name in ("events", "rules", "notifier"):
        port = DEFAULT_PORTS[name]
        assert definition["environment"][f"AVISA_{name.upper()}_URL"] == f"http://{name}:{port}"
    for dependency in ("postgres", "events", "rules"):
        assert definition["depends_on"][dependency]["condition"] == "service_healthy"


def test_env_example_names_only_variables_the_services_read():
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names - {"POSTGRES_PASSWORD"} <= known_variables()
    assert {"AVISA_ADMIN_KEY", "TWILIO_ACCOUNT_SID", "SENDGRID_API_KEY"} <= names


def test_dockerfile_installs_the_package_and_runs_the_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert 'ENTRYPOINT ["avisa"]' in dockerfile
    for folder in ("schemas", "common", "services", "avisa"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert "USER avisa" in dockerfile
