"""`avisa rules apply -f` and `avisa rules export` against the rules service's admin API."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import yaml

from avisa import cli
from tests.rules.factories import ADMIN, rule_body, template_body


@pytest.fixture
def run(client, monkeypatch, capsys):
    """Run `avisa ARGS...` with the admin key: its exit code, stdout and stderr."""
    client.headers.update(ADMIN)
    monkeypatch.setattr(cli, "_client", lambda url, key: nullcontext(client))

    def invoke(*args: str) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as exited:
            cli.main(list(args))
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    return invoke


def write_folder(folder, count: int, **changes) -> None:
    """A template and `count` rules, one YAML file each, in nested folders."""
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "templates" / "aviso.yaml").write_text(yaml.safe_dump(template_body()))
    for n in range(count):
        body = rule_body(id=f"regla-{n:03d}", **(changes if n == 0 else {}))
        (folder / "rules" / f"regla-{n:03d}.yaml").write_text(yaml.safe_dump(body))


def test_apply_prints_each_change_and_is_idempotent(run, tmp_path):
    write_folder(tmp_path, 2)

    code, out, err = run("rules", "apply", "-f", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("created   templates/licencia-renovacion")
    assert [line.split()[:2] for line in lines[1:3]] == [
        ["created", "rules/regla-000"],
        ["created", "rules/regla-001"],
    ]
    assert lines[-1] == "3 created, 0 updated, 0 unchanged"
    assert "[" not in err  # a small folder has no progress bar

    assert run("rules", "apply", "-f", str(tmp_path))[1] == "0 created, 0 updated, 3 unchanged\n"

    write_folder(tmp_path, 2, enabled=False)
    out = run("rules", "apply", "-f", str(tmp_path))[1]
    assert out.splitlines() == [
        f"updated   rules/regla-000  ({tmp_path / 'rules' / 'regla-000.yaml'})",
        "0 created, 1 updated, 2 unchanged",
    ]


def test_a_large_folder_shows_a_progress_bar(run, tmp_path):
    write_folder(tmp_path, 24)

    code, out, err = run("rules", "apply", "-f", str(tmp_path))

    assert code == 0
    assert out.count("created   rules/") == 24
    assert out.splitlines()[-1] == "25 created, 0 updated, 0 unchanged"
    assert "] 1/25" in err
    assert f"[{'#' * 30}] 25/25" in err
    assert err.endswith("\n")


def test_a_refused_document_stops_with_where_and_export_gives_back_what_was_applied(run, tmp_path):
    write_folder(tmp_path, 1)
    assert run("rules", "apply", "-f", str(tmp_path))[0] == 0
    bad = tmp_path / "rules" / "mala.yaml"
    bad.write_text(yaml.safe_dump(rule_body(id="mala", when="data.items.exists(x, x > 1)")))

    code, _, err = run("rules", "apply", "-f", str(bad))
    assert code == 2
    assert f"{bad} (rules/mala): 422" in err
    assert "when: not a valid CEL expression: line 1, column 12" in err

    export = run("rules", "export")[1]
    exported = list(yaml.safe_load_all(export))
    assert [d["id"] for d in exported] == ["licencia-renovacion", "regla-000"]
    assert exported[1] == exported[1] | rule_body(id="regla-000")
    (tmp_path / "export.yaml").write_text(export)
    again = run("rules", "apply", "-f", str(tmp_path / "export.yaml"))[1]
    assert again == "0 created, 0 updated, 2 unchanged\n"
