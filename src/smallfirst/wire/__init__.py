"""The OpenAI wire format, written once: what the gateway accepts and what every OpenAI
answer we send or read looks like.

- `schemas`: request bodies as validated at the edge (and published as /openapi.json)
- `requests`: request bodies as we send them upstream
- `render`: JSON answers, stream chunks and `[DONE]` as bytes
- `sse`: server-sent events parsed from a byte stream
- `parse`: usage, logprobs, choices and chunks read from an answer
- `collect`: the one collector that folds a stream into its text, finish reason and usage
"""
