"""`python -m bridge.hook`: the Claude Code hook (see bridge.hook.run)."""

from bridge.hook.run import main

raise SystemExit(main())
