from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError, ProgrammingError

from common.problems import Problem, install_problem_handlers


class Body(BaseModel):
    name: str
    count: int


def make_client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    def create(body: Body) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/db-down")
    def db_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    @app.get("/bad-sql")
    def bad_sql() -> None:
        raise ProgrammingError("SELECT nope", {}, ValueError("secret detail +34600111222"))

    @app.get("/conflict")
    def conflict() -> None:
        raise Problem(409, "Conflict", "already there", kind="conflict")

    return TestClient(app, raise_server_exceptions=False)


def test_validation_errors_name_every_bad_field():
    response = make_client().post("/things", json={"count": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:avisa:problem:validation"
    assert sorted(e["path"] for e in body["errors"]) == ["count", "name"]


def test_a_database_outage_is_503_with_retry_after_not_500():
    response = make_client().get("/db-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["status"] == 503


def test_unexpected_errors_are_500_problems_without_details():
    response = make_client().get("/bad-sql")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "SELECT" not in response.text and "+34" not in response.text


def test_domain_problems_keep_their_status_and_type():
    response = make_client().get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "type": "urn:avisa:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "already there",
    }


def test_unknown_routes_are_problem_json_404():
    response = make_client().get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_values_the_database_refuses_are_422_not_500():
    from sqlalchemy.exc import DataError

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/nul")
    def nul() -> None:
        raise DataError("INSERT", {}, ValueError("NUL character"))

    response = TestClient(app, raise_server_exceptions=False).get("/nul")
    assert response.status_code == 422
    assert response.json()["type"] == "urn:avisa:problem:validation"
