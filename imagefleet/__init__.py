"""imagefleet's top layer: the `imagefleet` command, which mounts the areas' commands and local
agents.

The core (``orchestrator``) and the areas never import this package."""
