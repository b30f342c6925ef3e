import json
import logging

from common.logging import JsonFormatter, mask


def test_phone_numbers_keep_only_their_ends():
    assert mask("call +34600111222 now") == "call +34******222 now"


def test_emails_keep_only_first_letter_and_domain():
    assert mask("to ana.garcia@example.es.") == "to a***@example.es."


def _format(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("avisa.test", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter("test").format(record))


def test_log_lines_are_json_with_masked_message_and_extras():
    line = _format("sent to +34600111222", to="ana@example.es", notification_id="n-1")
    assert line["msg"] == "sent to +34******222"
    assert line["to"] == "a***@example.es"
    assert line["notification_id"] == "n-1"
    assert line["service"] == "test"


def test_message_bodies_and_secrets_are_never_written():
    line = _format("rendered", body="Hola Ana, tu permiso caduca", authorization="Bearer x")
    assert line["body"] == "[redacted]"
    assert line["authorization"] == "[redacted]"
    assert "Hola" not in json.dumps(line)
