"""Workspace copies, patch application, the Docker and local backends, images."""
