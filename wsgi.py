import gc

from barometer import ConfigurationError, create_app

try:
    app = create_app()
except ConfigurationError as exc:  # said plainly to whoever started gunicorn or `flask`
    raise SystemExit(f"Baromètre : {exc}") from None
# What is built so far lives as long as the worker: kept out of the garbage collector's
# full passes, which otherwise pause a request for tens of milliseconds (bench/README.md).
gc.collect()
gc.freeze()
