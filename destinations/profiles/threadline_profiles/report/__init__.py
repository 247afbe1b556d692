"""The HTML report of each build."""
