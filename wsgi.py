import gc

from barometer import create_app

app = create_app()
# What is built so far lives as long as the worker: kept out of the garbage collector's
# full passes, which otherwise pause a request for tens of milliseconds (bench/README.md).
gc.collect()
gc.freeze()
