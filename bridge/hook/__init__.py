"""The Claude Code hook, run as `python -m bridge.hook` with Claude Code's hook JSON on stdin.

Stop and SubagentStop -> a task_completion event file, Notification -> info_notification, PermissionRequest ->
an approval_request, after which the hook waits for the owner's answer on Telegram and prints Claude Code's
decision (or nothing, so that Claude Code asks in the terminal). Nothing here imports Django, pydantic or
python-telegram-bot: the hook runs before every permission prompt and after every turn, so it imports the
stdlib only and writes its event within milliseconds.

Modules: run (entry point and the handler of each hook event), payload (the hook input), describe and
transcript (the events), files (the file system), decision (waiting for the answer), grants ("Allow for this
session"), config (the environment), bench (timing helpers for `manage.py bench`; never imported by the hook).
"""
