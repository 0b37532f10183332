"""Entry point: ``python -m atlas_stream <command>`` and the ``atlas-stream`` console script;
Faust's own commands (worker, ...) run the app."""

from __future__ import annotations

import sys
from pathlib import Path


#: the worker's lock on its table data dir (atlas_stream.datadir), held until the process ends
_claim = None


def main() -> int:
    # agents/ and tables/ sit beside the package (STYLE.md pitfall 1): put the repository root
    # on sys.path so the app's autodiscovery finds them from any working directory. They are
    # never installed (pitfall 4): an installed package (atlas-stream console script) finds
    # them in the checkout it is run from.
    root = _checkout()
    if root is not None and root not in sys.path:
        sys.path.insert(0, root)
    from atlas_stream.cli import COMMANDS, main as cli_main

    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        return cli_main(sys.argv[1:])
    if root is None and "worker" in sys.argv[1:2]:
        print("error: the worker needs the project's agents/ and tables/ folders, which are never installed: "
              "run atlas-stream from a checkout of Atlas Stream (or install it with `pip install -e .`)",
              file=sys.stderr)
        return 2
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

        from atlas_stream.datadir import claim_table_dir
        from atlas_stream.kafka_security import check_kafka

        try:
            global _claim
            _claim = claim_table_dir(settings, str(app.conf.store))
            asyncio.run(check_kafka(settings.bootstrap_servers, settings.kafka_security))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    app.main()
    return 0


def _checkout() -> str | None:
    """The folder holding agents/ and tables/: the package's parent, else the working directory."""
    for folder in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (folder / "agents" / "__init__.py").is_file() and (folder / "tables" / "__init__.py").is_file():
            return str(folder)
    return None


if __name__ == "__main__":
    sys.exit(main())
