"""The print spool: a film job written down before the N-ACTION is answered.

A job is accepted (the modality told "printed") only once its spool file is stored, so a crash
between accepting and rendering loses nothing: the renderer picks spooled jobs up on restart.
The spool is a DICOM Part 10 file: the image boxes' own sequences as received, and the job's
facts as JSON in one private element.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from print_scp.domain.print_session import FilmJob, JobImage, LutSpec

_CREATOR = "IMAGING PRINT SPOOL"
_SPOOL_CLASS = "1.2.840.10008.5.1.1.2"  # Film Box: the spool is one film box's content


def _lut_json(lut: LutSpec | None) -> dict | None:
    if lut is None:
        return None
    return {"uid": lut.uid, "shape": lut.shape, "table": None if lut.table is None else lut.table.tolist()}


def _lut_from(d: dict | None) -> LutSpec | None:
    if d is None:
        return None
    return LutSpec(d["uid"], d["shape"], None if d["table"] is None else np.asarray(d["table"], dtype=np.float32))


def dump(job: FilmJob) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = _SPOOL_CLASS
    ds.SOPInstanceUID = job.film_box_uid
    items = []
    for img in job.images:
        it = Dataset()
        it.ImageBoxPosition = img.position
        seq_kw = "BasicColorImageSequence" if img.color else "BasicGrayscaleImageSequence"
        setattr(it, seq_kw, Sequence([img.item]))
        items.append(it)
    ds.ReferencedImageBoxSequence = Sequence(items)
    meta = {
        "film_id": job.film_id, "job_uid": job.job_uid, "film_box_uid": job.film_box_uid,
        "session_uid": job.session_uid, "calling_ae": job.calling_ae, "called_ae": job.called_ae,
        "peer": job.peer, "session": job.session, "film": job.film, "annotations": job.annotations,
        "lut": _lut_json(job.lut), "study_uids": job.study_uids, "printed_at": job.printed_at.isoformat(),
        "collated": job.collated,
        "images": [{"position": i.position, "color": i.color, "polarity": i.polarity,
                    "magnification": i.magnification, "requested_size_mm": i.requested_size_mm,
                    "lut": _lut_json(i.lut)} for i in job.images],
    }
    block = ds.private_block(0x0009, _CREATOR, create=True)
    block.add_new(0x10, "UT", json.dumps(meta, ensure_ascii=False))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(_SPOOL_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(job.film_box_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def load(data: bytes) -> FilmJob:
    ds = dcmread(io.BytesIO(data))
    meta = json.loads(ds.private_block(0x0009, _CREATOR)[0x10].value)
    by_pos = {}
    for it in ds.ReferencedImageBoxSequence:
        seq = it.get("BasicColorImageSequence") or it.get("BasicGrayscaleImageSequence")
        by_pos[int(it.ImageBoxPosition)] = seq[0]
    images = [JobImage(i["position"], i["color"], by_pos[i["position"]], i["polarity"], i["magnification"],
                       i["requested_size_mm"], _lut_from(i["lut"])) for i in meta["images"]]
    return FilmJob(
        film_id=meta["film_id"], job_uid=meta["job_uid"], film_box_uid=meta["film_box_uid"],
        session_uid=meta["session_uid"], calling_ae=meta["calling_ae"], called_ae=meta["called_ae"],
        peer=meta["peer"], session=meta["session"], film=meta["film"], images=images,
        annotations=meta["annotations"], lut=_lut_from(meta["lut"]), study_uids=meta["study_uids"],
        printed_at=datetime.fromisoformat(meta["printed_at"]), collated=meta["collated"],
    )
