from barometer import ConfigurationError, create_app

try:
    app = create_app()
except ConfigurationError as exc:  # said plainly to whoever started gunicorn or `flask`
    raise SystemExit(f"Baromètre : {exc}") from None
