"""Placing one ipytui kernel on another host through a Jupyter kernel provisioner.

``ssh`` holds ``SSHProvisioner`` (entry point ``ipytui-ssh``), which runs in
the process of the Jupyter kernel manager; ``launcher`` runs on the remote
host, behind ssh, and execs the kernel there; ``handshake`` is the one-line
JSON exchange between them; ``keeper`` holds a kernel manager for
``ipytui --kernel NAME`` so that the kernel outlives the UI.
"""
