"""Entry point: ``python -m atlas_stream <command>``; Faust's own commands (worker, ...) run the app."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    # agents/ and tables/ sit beside the package (STYLE.md pitfall 1): put the repository root
    # on sys.path so the app's autodiscovery finds them from any working directory.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from atlas_stream.cli import COMMANDS, main as cli_main

    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        return cli_main(sys.argv[1:])
    # The broker, contracts and up commands must work without loading the app (a bad contract
    # is reported by them, not by a traceback); everything else is Faust's command line.
    from atlas_stream.errors import ConfigError, SettingsError

    try:
        from atlas_stream.app import app, settings
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not isinstance(exc, SettingsError):
            print("fix the contract (check with `python -m atlas_stream contracts`), then start again",
                  file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    if "worker" in sys.argv[1:2]:
        # Faust retries a refused login forever with a traceback each time: try it once here.
        import asyncio

        from atlas_stream.kafka_security import check_kafka

        try:
            asyncio.run(check_kafka(settings.bootstrap_servers, settings.kafka_security))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
