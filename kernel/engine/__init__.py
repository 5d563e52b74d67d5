"""The ipytui engine: an ipyparallel engine whose tasks run in an ipytui kernel.

A thin front process (this package) owns the controller connection: it
registers as ``ipengine`` does, beats the heart, and relays the schedulers'
and the control channel's traffic, frame for frame, to an ipytui kernel
(supervisor and worker) it starts on private IPC sockets. The messages are
signed with the controller's key end to end; the front parses none of them.
So a crash of the worker is the kernel's business: the supervisor answers
the task with an error and restores the worker from its snapshot, while the
front keeps the engine's registration, id and heartbeat alive.
"""
