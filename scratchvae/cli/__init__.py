"""What every command shares: flag types and their checks, the flag registry, --help's format, the settings a
run resolves, and the errors a command prints as one line."""
