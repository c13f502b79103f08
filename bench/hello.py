"""The baseline of the HTTP benchmark: a bare Flask app under the same gunicorn."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "hello"
