"""Claude Code channel: Telegram chat pushed into running sessions, and their permission prompts relayed.

inbox     the bridge's side: inbound messages stored durably for the sessions; the session registry and the
          claim / deliver / release steps that give each message to exactly one session
wake      a loopback UDP poke from the bridge to the sessions, so they need not poll the database fast
link      one attached session (in the MCP process): delivers its share as notifications, heartbeats
topics    a forum topic per session in the channel forum (CC_TELEGRAM_CHANNEL_FORUM)
relay     permission_request -> approval through the bridge's approval machinery -> verdict notification
outgoing  reply, react, edit_message: the bot's side of the chat, sent from the MCP process with the limits
server    the channel-mode MCP server (`manage.py mcp_server --channel`)
pairing   the pairing policy: a code for an unknown user, confirmed by an operator (`manage.py pair`, admin)
admin     sessions, their inbox and pairing requests in the operations UI
"""
