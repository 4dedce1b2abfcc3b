"""Approval channels: escalations posted where approvers are (Slack, e-mail), answered
there with the same guarantees as the dashboard.

- ``base.py``: what a channel is (the ``staso_channels`` hook's classes) and its context;
- ``facts.py``: what every channel shows of an escalation, written once;
- ``routing.py``: which channels an escalation goes to;
- ``outbox.py``: the worker that announces escalations and delivers the queue, with backoff;
- ``slack*.py`` and ``email*.py``: the two built-in channels and their answer routes.
"""
