"""The health check answers for the app and its database."""

from sqlalchemy.exc import OperationalError

from barometer.extensions import db


def test_health_is_ok_when_the_database_answers(client):
    page = client.get("/sante")
    assert page.status_code == 200 and page.json == {"status": "ok", "database": True}


def test_health_is_503_when_the_database_does_not_answer(app, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with app.app_context():
        monkeypatch.setattr(db.session, "execute", down)
        page = app.test_client().get("/sante")
    assert page.status_code == 503 and page.json["database"] is False
