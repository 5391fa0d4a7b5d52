"""`voxkeepctl simulate SCRIPT`: a whole call offline (docs/simulate.md). The simulator, and
the LiveKit session under it, load only for this command (`preload`, on the main thread, where
LiveKit registers its plugins): every other command starts without them, seconds sooner."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from voxkeep.core.extras import needs
from voxkeep.core.settings import Settings


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("simulate", help="run a scripted call offline, with the real session")
    p.add_argument("script", help="the script, YAML or JSON")
    p.add_argument("--trace", metavar="PATH", help="write every LLM request here, a JSON line each")
    p.add_argument(
        "--offline",
        action="store_true",
        help="stand-in providers (the default when OPENAI_API_KEY and OPENAI_BASE_URL are unset)",
    )
    p.add_argument("--json", action="store_true", dest="json_here", help=argparse.SUPPRESS)
    p.set_defaults(run=run, own_store=True, preload=preload)


def preload() -> None:
    with needs("sim", "voxkeepctl simulate"):
        importlib.import_module("voxkeep.sim.runner")
        importlib.import_module("voxkeep.sim.script")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from voxkeep.sim.runner import simulate, trace_file  # (preloaded: see the docstring)
    from voxkeep.sim.script import load_script

    script, base = load_script(args.script)
    if args.db:
        settings = settings.model_copy(update={"db_url": args.db})
    no_provider = not settings.openai_api_key.get_secret_value() and not settings.openai_base_url
    with trace_file(args.trace) as trace:
        result = await simulate(
            script, base, settings, offline=args.offline or no_provider, trace=trace
        )
    if args.json or args.json_here:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"database: {result['db']}")
    for i, call in enumerate(result["calls"], 1):
        print(
            f"call {i}: {call['call_id']}  chats: {', '.join(call['chat_ids'])}  "
            f"messages saved: {call['messages_saved']}"
        )
        for reply in call["control_replies"]:
            answer = reply["reply"]
            shown = "no reply" if answer is None else json.dumps(answer, ensure_ascii=False)
            print(f"  control via {reply['via']} to {reply['to']}: {shown}")
        for event in call["events"]:
            print(f"  event: {json.dumps(event, ensure_ascii=False)}")
    return 0
