"""The MCP server (its own process): tools and resources over the bridge for AI agents.

server     the MCPServer subclass: rate limits, structured refusals; build_server()
tools      the tools (names, arguments and results of the original), resources: the cctelegram:// documents
models     the typed tool arguments; results: how results and refusals look
sending, decisions, responses, status, bridge_process: what the tools do
services   what the tools share for one run (event store, bridge process); ratelimit; http (bearer auth)
frontend   the stdio wire: initialize answered before the SDK loads (handshake), sends without its session
           machinery, the rest passed to the SDK; stdio: the pipes it reads and writes
settings   the lean Django settings this process runs with
"""
