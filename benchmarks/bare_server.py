"""The baseline for server benchmarks: a bare FastAPI endpoint on the same uvicorn settings,
returning the same JSON a staso allow decision returns, with no policy, auth or storage.

    python benchmarks/bare_server.py PORT RESPONSE_JSON_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response

app = FastAPI()
ANSWER = Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else b'{"action":"allow"}'


@app.post("/v1/guard")
async def guard(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
