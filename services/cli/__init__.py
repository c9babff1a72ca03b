"""The `lockgate` command: operators' and developers' entry point."""
