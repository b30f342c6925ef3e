"""The events service in production on a database made in development mode (`make run`)."""

from __future__ import annotations

import json

from tests.events.conftest import DEMO, STRUCTURED, make_event, make_settings, running


def publish(client):
    headers = {**DEMO, "Content-Type": STRUCTURED}
    return client.post("/v1/events", content=json.dumps(make_event()), headers=headers)


def test_production_refuses_the_demo_key_the_development_run_stored(
    broker, topic_prefix, database_url
):
    development = make_settings(broker.bootstrap, topic_prefix, database_url)
    with running(development) as client:
        assert publish(client).status_code == 202  # the demo agency and its key are stored

    production = make_settings(broker.bootstrap, topic_prefix, database_url, env="production")
    with running(production) as client:
        answers = [publish(client).status_code for _ in range(3)]  # the cached path too
        read = client.get("/v1/events/x", headers=DEMO).status_code

    assert answers == [401, 401, 401]
    assert read == 401
