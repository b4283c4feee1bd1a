"""`python -m queue_calling`: run this service alone (what its container runs).

Served like every service, except that WebSocket per-message compression is off: screen messages
are a couple of kilobytes on the hospital LAN, and compressing each one separately for every
connected screen costs more CPU than everything else a call does (see tests/bench/test_queue_bench.py).
"""

import uvicorn
from imaging_common.runner import exit_if_infrastructure_missing

from queue_calling.app import create_app
from queue_calling.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    exit_if_infrastructure_missing(settings)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, lifespan="on", ws_per_message_deflate=False)
