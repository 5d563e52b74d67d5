"""ipytui kernel: wire protocol, client, supervisor and worker. Never imports Textual."""
