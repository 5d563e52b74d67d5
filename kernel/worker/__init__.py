"""The worker process (``python -m ipytui.kernel.worker``): runs the user's code
and answers completion, inspection and comms; snapshots and checkpoints itself.
It never imports the supervisor's code.
"""
