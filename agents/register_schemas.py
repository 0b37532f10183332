"""Register every dataset's schema at startup and keep the schema-registry table."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson

from atlas_stream.app import app, catalog
from atlas_stream.channels import events, output_topics, schema_requests
from atlas_stream.messages import encode, event_message
from atlas_stream.schema_registry import (
    CONFIG_KEY,
    assign_schema_ids,
    effective_mode,
    register,
    schema_ids,
    set_compatibility,
)
from tables.schemas import schema_registry

log = logging.getLogger(__name__)


@app.task
async def request_schema_registrations() -> None:
    """Declare output topics, then ask the registry agent to register each contract's schema."""
    for topic in [*output_topics.values(), events]:
        await topic.maybe_declare()
    for rt in catalog.datasets:
        await schema_requests.send(key=rt.subject.encode(), value=encode({
            "subject": rt.subject,
            "schema": rt.contract_schema,
            "compatibility": rt.dataset.compatibility,
            "file": rt.contract.file,
        }))


async def _set_mode(subject: str, mode: Any) -> None:
    """A compatibility change from ``PUT /schemas/config[/<subject>]`` (checked by the view);
    the global mode is kept under CONFIG_KEY."""
    state = schema_registry.get(subject)
    if subject == CONFIG_KEY and not state:
        state = {}  # stored on the first change, even to the default: the view waits to see it
    try:
        new = set_compatibility(state, mode) if state is not None else None
    except ValueError as exc:
        log.error("ignored compatibility change of %s: %s", subject, exc)
        return
    if new is None:
        log.error("ignored compatibility change of unknown subject %s", subject)
        return
    if new != state:
        schema_registry[subject] = new
        log.info("schema %s: compatibility set to %s", subject, new["compatibility"])
        await events.send(key=subject.encode(), value=event_message(
            "schema.config", subject, compatibility=new["compatibility"],
            previous=effective_mode(state) if subject == CONFIG_KEY else (state or {}).get("compatibility")))


def _give_schema_ids() -> None:
    """Versions stored before integer schema ids existed get theirs (once; a no-op after)."""
    for subject, state in assign_schema_ids(dict(schema_registry.items())).items():
        schema_registry[subject] = state
        log.info("schema %s: integer schema ids given to its versions", subject)


# The Faust name predates this module's name (agents/registry.py): kept so logs, metrics and
# tests that name the agent stay the same.
@app.agent(schema_requests, name="agents.registry.register_schemas")
async def register_schemas(stream: Any) -> None:
    async for value in stream:
        _give_schema_ids()
        try:
            request = orjson.loads(value)
            subject = request["subject"]
            schema: Any = request["schema"] if request.get("action") != "config" else None
            mode = request.get("compatibility")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.error("ignored malformed schema request %r: %s", value[:200], exc)
            continue
        if request.get("action") == "config":
            await _set_mode(subject, mode)
            continue
        try:
            result = register(schema_registry.get(subject), subject, schema, mode, datetime.now(timezone.utc),
                              ids=schema_ids(schema_registry.values()),
                              default_mode=effective_mode(schema_registry.get(CONFIG_KEY)))
        except ValueError as exc:  # e.g. an unknown compatibility mode sent by hand
            result = None
            problems = [str(exc)]
        if result is not None and result.outcome == "registered":
            schema_registry[subject] = result.state
            log.info("schema %s registered as version %d", subject, result.version)
            await events.send(key=subject.encode(), value=event_message(
                "schema.registered", subject, version=result.version, file=request.get("file")))
        elif result is None or result.outcome == "refused":
            problems = result.problems if result is not None else problems
            version = result.version if result is not None else None
            log.error(
                "schema %s REFUSED (%s); version %s stays in force: %s",
                subject, mode, version, "; ".join(problems),
            )
            await events.send(key=subject.encode(), value=event_message(
                "schema.refused", subject, version_in_force=version, problems=problems,
                file=request.get("file")))
        elif result.state != schema_registry.get(subject):
            schema_registry[subject] = result.state  # compatibility mode changed
