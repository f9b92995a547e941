"""Answers back: what the owner presses and writes in Telegram, carried to the agent.

inbound         Telegram updates parsed into ButtonPress / IncomingMessage at the boundary
updates         the poller (getUpdates, one per bot token, offset kept in PollerState); lease: its lock
webhook         the same, when Telegram posts updates to the web process
handler         one entry for both: ordering, concurrency, repeats skipped
callbacks       button presses: who may press, deciding approvals, acknowledge / details
messages        text replies and the bot's commands (/start, /help, /bridge, /cct:local|nomad|mute)
approvals       the approval lifecycle: pending -> approved / denied / answered / expired, waiting for it
response_files  Response rows mirrored as response files, written atomically and in batches
service         what a worker runs: poller or webhook registration, writer, expiry and retry sweeps
"""
