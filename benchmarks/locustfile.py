"""Locust users for `benchmarks/load.py`: chat completions through the gateway, 1 in 4 streamed.

The key comes from `SMALLFIRST_LOAD_KEY`. A request counts as failed unless it gets a 200 and,
for a stream, the body ends with `data: [DONE]` (a cut-off stream is a failure too).
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, task

MESSAGES = [{"role": "user", "content": "Say ok in one word, please."}]
_counter = itertools.count()


class ChatUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {os.environ['SMALLFIRST_LOAD_KEY']}"}

    @task
    def chat(self) -> None:
        stream = next(_counter) % 4 == 0
        body = {"model": "small", "messages": MESSAGES, "max_tokens": 8, "stream": stream}
        name = "chat stream" if stream else "chat"
        with self.client.post(
            "/v1/chat/completions", json=body, headers=self.headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
            elif stream and not response.text.rstrip().endswith("data: [DONE]"):
                response.failure("stream ended without data: [DONE]")
            else:
                response.success()


def _user_per_host(hosts: list[str]) -> dict[str, type[ChatUser]]:
    """One user class per replica (`SMALLFIRST_LOAD_HOSTS`), equally weighted: locust then
    spreads the users evenly, as a round-robin load balancer would."""
    if not hosts:
        return {"ChatUser0": type("ChatUser0", (ChatUser,), {"abstract": False})}
    return {
        f"ChatUser{i}": type(f"ChatUser{i}", (ChatUser,), {"abstract": False, "host": host})
        for i, host in enumerate(hosts)
    }


globals().update(
    _user_per_host([h for h in os.environ.get("SMALLFIRST_LOAD_HOSTS", "").split(",") if h])
)
