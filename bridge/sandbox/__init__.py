"""The sandbox: the built-in Bot API emulator standing in for Telegram when no bot token is set."""
