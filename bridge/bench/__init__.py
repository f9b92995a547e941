"""`manage.py bench`: the whole system measured against its targets and baselines, in one run.

world.py      the isolated world the bench runs in (temporary home, its own database and Redis)
runner.py     runs the scenarios there: fresh database each, a watchdog, "not run" and crash handling
scenarios/    one module per scenario (ingest, e2e, burst, flood, mcp, hook, http, compression, redis, soak)
harness.py    what scenarios share: the feeder process, the emulator, bridge processes, RSS sampling
feeder.py     the agent's side: stages event files, renames them in at a rate, logs the times
baseline.py   the naive sender the e2e figures are compared with
original.py   the original system's reported figures
report.py     figures, targets, the table and the JSON file; plot.py the PNG; progress.py stderr progress
"""
