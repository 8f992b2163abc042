#!/bin/sh
# The e2e check's counting hook: registered next to hooktrail-emit for every
# one of Claude Code's 33 hook events, it appends the hook's stdin as one JSON
# line to the file named by $1, prints nothing and exits 0, so the check knows
# exactly which hook invocations happened. (-p mode gives stdin without a
# trailing newline; `$(cat)` plus printf normalises it.)
in=$(cat)
printf '%s\n' "$in" >> "$1"
exit 0
