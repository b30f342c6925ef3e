from datetime import UTC, datetime

from common.db import make_engine, make_sessions
from services.rules import repository
from services.rules.config import Settings
from services.rules.documents import canonical, parse_rule, parse_template
from services.rules.main import migrate
from services.rules.rulebook import RuleBook
from tests.rules.factories import rule_body, template_body

NOW = datetime(2026, 11, 29, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def save(sessions, kind, document):
    with sessions() as session:
        repository.save(
            kind, document.id, canonical(document), actor="test", now=NOW, session=session
        )
        session.commit()


def test_changes_from_another_replica_arrive_after_the_refresh_interval(database_url):
    migrate(Settings(database_url=database_url, env="development"))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    clock = Clock()
    book = RuleBook(sessions, refresh_interval_s=2.0, clock=clock)
    assert book.snapshot().rules == []

    save(sessions, "template", parse_template(template_body(), "licencia-renovacion"))
    save(sessions, "rule", parse_rule(rule_body(), "licencia-aviso"))
    clock.now = 1.9
    assert book.snapshot().rules == []  # still fresh enough
    clock.now = 2.0
    snapshot = book.snapshot()
    assert [(c.rule.id, c.version) for c in snapshot.rules] == [("licencia-aviso", 1)]
    assert set(snapshot.templates) == {"licencia-renovacion"}

    save(sessions, "rule", parse_rule(rule_body(enabled=False), "licencia-aviso"))
    book.invalidate()  # what this process's admin API does after a change
    assert book.snapshot().rules == []
    engine.dispose()


def test_unchanged_rules_keep_their_compiled_condition(database_url):
    migrate(Settings(database_url=database_url, env="development"))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    save(sessions, "rule", parse_rule(rule_body(when='data.category == "B"'), "licencia-aviso"))
    book = RuleBook(sessions, refresh_interval_s=0.0)
    first = book.snapshot().rules[0]
    assert book.snapshot().rules[0] is first
    engine.dispose()
