"""The supervisor process (``python -m ipytui.kernel``): binds the public sockets,
routes to the worker, survives its crashes, writes the journal and the lock file.
It never runs user code and never imports the worker's code.
"""
