"""C-FIND round trips over one open association, run as its own process by the worklist bench
(so the client's decoding does not share a Python interpreter, and its GIL, with our server).

    python worklist_client.py <port> <repetitions> '<json list of findscu-style keys>'
prints a JSON list of seconds per query.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind


def _nodelay(event: Any) -> None:
    # DCMTK sets TCP_NODELAY; pynetdicom does not, and Nagle would add ~40 ms to each round trip.
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def dataset(keys: list[str]) -> Dataset:
    ds = Dataset()
    sps = Dataset()
    for key in keys:
        name, _, value = key.partition("=")
        if name.startswith("(0040,0100)[0]."):
            setattr(sps, name.split(".", 1)[1], value)
        else:
            setattr(ds, name, value)
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def main(port: int, reps: int, keys: list[str]) -> list[float]:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="WORKLIST", evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)])
    assert assoc.is_established
    query = dataset(keys)
    out = []
    try:
        for _ in range(reps):
            started = time.perf_counter()
            statuses = [int(s.Status) for s, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)]
            out.append(time.perf_counter() - started)
            assert statuses[-1] == 0, statuses[-1]
    finally:
        assoc.release()
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))))
