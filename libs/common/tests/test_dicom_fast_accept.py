"""Association set-up copies the server's contexts cheaply, and as independently as deepcopy would."""

from __future__ import annotations

import copy

from imaging_common.dicom.fast_accept import use_fast_accept
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AssociationServer


def test_each_association_gets_contexts_of_its_own() -> None:
    ae = AE(ae_title="FAST")
    ae.add_supported_context(Verification, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"], scu_role=True, scp_role=True)
    server = AssociationServer(ae, ("127.0.0.1", 0), "FAST", ae.supported_contexts)
    try:
        use_fast_accept(server)
        original = server.contexts[0]
        mine = copy.deepcopy(server.contexts)[0]  # what RequestHandler._create_association does
        assert mine is not original and mine.abstract_syntax == original.abstract_syntax
        assert mine.transfer_syntax == original.transfer_syntax and (mine.scu_role, mine.scp_role) == (True, True)
        mine.transfer_syntax = ["1.2.840.10008.1.2"]  # negotiation narrows the copy...
        mine.result = 0
        assert len(original.transfer_syntax) == 2 and original.result is None  # ...never the server's
    finally:
        server.server_close()
