"""What every ipytui process shares: the wire codec, signing, connection and key
files, pipe framing, paths, the journal's schema and reads, process helpers.

No sockets live here, and nothing here imports the supervisor, the worker or a
client: this package is where those meet.
"""
