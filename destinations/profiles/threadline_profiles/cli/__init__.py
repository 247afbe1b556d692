"""The `threadline profiles|audiences|push|forget` commands."""
