"""The route table in front of the router picks the route FastAPI's own ordered scan would pick."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.infra.routes import install_route_table


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{name}")
    async def by_name(name: str) -> dict[str, str]:
        return {"route": "by_name", "name": name}

    @app.get("/items/me")
    async def me() -> dict[str, str]:  # shadowed by the route above, as in FastAPI
        return {"route": "me"}

    @app.post("/things")
    async def make() -> dict[str, str]:
        return {"route": "make"}

    install_route_table(app.router)
    return app


def test_an_earlier_route_with_parameters_still_wins() -> None:
    with TestClient(_app()) as client:
        for _ in range(2):  # the first request finds the route, the second reads it from the table
            assert client.get("/items/me").json() == {"route": "by_name", "name": "me"}


def test_static_paths_methods_and_misses_answer_as_without_the_table() -> None:
    app = _app()
    with TestClient(app) as client:
        assert client.post("/things").json() == {"route": "make"}
        assert client.get("/things").status_code == 405
        assert client.get("/nowhere").status_code == 404
        assert client.get("/items/a%20b").json() == {"route": "by_name", "name": "a b"}


def test_a_route_added_later_is_found() -> None:
    app = _app()
    with TestClient(app) as client:
        assert client.get("/late").status_code == 404

        @app.get("/late")
        async def late() -> dict[str, str]:
            return {"route": "late"}

        assert client.get("/late").json() == {"route": "late"}
