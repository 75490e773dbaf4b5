"""The HTTP face of Shenpi: the same service calls as the CLI, over HTTP (issue 11)."""
