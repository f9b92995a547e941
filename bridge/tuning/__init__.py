"""Auto-tuning: the worker measures itself (telemetry), one worker at a time (lease) decides on bounded knob
changes (tuner, pure) and applies them through the audited settings (runner)."""
