"""`auto` that learns: each task moves to the smallest model proven to serve it.

The loop, one module per job:

- `tasks.py`      names the task a request belongs to (explicit name, endpoint, template).
- `verdicts.py`   compares a cheaper answer with the reference (labels, JSON fields, tool
                  calls exactly; free text by a judge model).
- `shadow.py`     after an answer is sent, asks the other tier too for a share of traffic,
                  within the daily learning budget and never off-box for local-only data;
                  `budget.py` that budget, over every replica.
- `server/feedback_endpoint.py`  `POST /v1/feedback`: a client's verdict on its own request.
- `learner.py`    `smallfirst learn`: per task, builds the candidates (tier-0 student, small
                  model) from the evidence, estimates each on held-out evidence with a lower
                  bound, and stores a new policy version when the verdict changes.
- `policies.py`   each replica's view of the current policies, re-read from the database.
- `target.py`     the `Target` that serves `model: "auto"` by a task's policy.
- `store.py`      the tables (migration m010); `records.py` the rows; `inputs.py` what
                  a student learns from.
- `task_report.py` per task volume, spend, tiers, evidence and policy (`smallfirst tasks`,
                  `smallfirst report`, the dashboard).
- `tier_series.py` per task the share per tier in each time bucket (the same three).
- `gateway.py`    the gateway's handle on all of it.
"""
