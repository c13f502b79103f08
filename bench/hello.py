"""The reference of the HTTP benchmark: a bare Flask "hello", under the same gunicorn as the app."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "hello"
