"""`manage.py bench [SCENARIO ...]`: the benchmark suite, measured in a world of its own.

Run as you would any command, it is a launcher: it builds a temporary world (home folder, database, Redis; see
bridge/bench/world.py) and runs itself again inside it, so nothing is measured in, or written to, your own
installation. Inside the world (CC_TELEGRAM_BENCH_WORLD set) it runs the scenarios (bridge/bench/runner.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bridge.bench.scenarios import DEFAULT, SCENARIOS
from bridge.bench.world import WORLD_ENV, World


class Command(BaseCommand):
    help = (
        "Measure the bridge against its targets and baselines: "
        f"{', '.join(SCENARIOS)}. Default: all but soak. Writes a table, bench-results/<time>.json and a plot."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {', '.join(SCENARIOS)}"
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="smaller counts and shorter phases: the default set in about a minute "
            "(the soak, when named, lasts 2 minutes instead of 30)",
        )
        parser.add_argument("--soak", action="store_true", help="add the soak to the scenarios that run")
        parser.add_argument(
            "--soak-minutes", type=float, default=None, help="soak length (default 30, or 2 with --quick)"
        )
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="multiply every count and phase length (0.1 for a smoke run, 2 for a longer one)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="folder for <time>.json and the plots (default: bench-results/ in the project)",
        )
        parser.add_argument(
            "--markdown",
            action="store_true",
            help="print the table as Markdown (for README's Performance section)",
        )
        parser.add_argument(
            "--from-json",
            type=Path,
            metavar="FILE",
            help="print the table of a past run (bench-results/<time>.json) instead of running; with --markdown too",
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="run the scenarios under pyinstrument; the report goes beside the JSON file",
        )
        parser.add_argument(
            "--keep-world", action="store_true", help="keep the temporary world folder for inspection"
        )

    def handle(self, *args, **options):
        if options["from_json"]:
            self._print_past_run(options["from_json"], markdown=options["markdown"])
            return
        names = list(dict.fromkeys(options["scenarios"] or DEFAULT))
        unknown = [name for name in names if name not in SCENARIOS]
        if unknown:
            raise CommandError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        if options["soak"] and "soak" not in names:
            names.append("soak")
        if options["scale"] <= 0:
            raise CommandError("--scale must be positive")
        output = (options["output"] or Path(settings.BASE_DIR) / "bench-results").resolve()

        if os.environ.get(WORLD_ENV):
            from bridge.bench.runner import Options, run

            soak = options["soak_minutes"] or (2.0 if options["quick"] else 30.0)
            code = run(
                Options(
                    scenarios=names,
                    quick=options["quick"],
                    scale=options["scale"],
                    soak_minutes=soak,
                    output=output,
                    markdown=options["markdown"],
                )
            )
            if code:
                sys.exit(code)
            return

        child = [str(Path(settings.BASE_DIR) / "manage.py"), "bench", *names, "--output", str(output)]
        child += ["--scale", str(options["scale"])]
        child += [f"--{flag}" for flag in ("quick", "markdown") if options[flag]]
        if options["soak_minutes"]:
            child += ["--soak-minutes", str(options["soak_minutes"])]
        interpreter = [sys.executable]
        if options["profile"]:
            interpreter = self._profiler(output)
        with World(keep=options["keep_world"]) as world:
            code = world.run([*interpreter, *child])
        if code:
            sys.exit(code)

    def _print_past_run(self, path: Path, *, markdown: bool) -> None:
        from bridge.bench.report import read_json, render_table

        try:
            run, results = read_json(path)
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"{path} is not a bench run: {error}") from None
        load = ", ".join(f"{x:.1f}" for x in run.get("load_average_at_start", []))
        kind = "quick" if run["quick"] else "full"
        commit = run["commit"] or "unknown"
        self.stdout.write(
            f"CCTelegram bench {run['timestamp']} ({kind} run, {run['machine']}, load {load}, {commit})"
        )
        self.stdout.write(render_table(results, markdown=markdown))

    def _profiler(self, output: Path) -> list[str]:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            raise CommandError("--profile needs pyinstrument: pip install -e '.[bench]'") from None
        output.mkdir(parents=True, exist_ok=True)
        report = output / "profile.html"
        self.stderr.write(f"profiling with pyinstrument; report: {report}")
        return [sys.executable, "-m", "pyinstrument", "--renderer", "html", "--outfile", str(report)]
