"""The print spool: a film job written down before the N-ACTION is answered.

A job is accepted (the modality told "printed") only once it is durable, so a crash between accepting
and rendering loses nothing: the renderer picks spooled jobs up on restart. A job is kept as

- one *image object* per image box, written as the box's N-SET arrives, so the print itself need not
  write the bulk of the job (8 MB for one 2048x2048 12-bit image). It is a DICOM Part 10 file whose
  data set is the N-SET's modification list byte for byte, in the transfer syntax it came in: nothing
  is decoded and re-encoded on the way;
- one small *manifest* per film, written at the N-ACTION: the job's facts as UTF-8 JSON, so text keeps
  every character whatever Specific Character Set the modality sent it in, and the keys of its image
  objects.

Films spooled by an earlier version (one DICOM file with the JSON in a private element) still load.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from print_scp.domain.print_session import COLOR_IMAGE_BOX, GRAYSCALE_IMAGE_BOX, FilmJob, JobImage, LutSpec

MANIFEST_VERSION = 2
_LEGACY_CREATOR = "IMAGING PRINT SPOOL"


def _lut_json(lut: LutSpec | None) -> dict | None:
    if lut is None:
        return None
    return {"uid": lut.uid, "shape": lut.shape, "table": None if lut.table is None else lut.table.tolist()}


def _lut_from(d: dict | None) -> LutSpec | None:
    if d is None:
        return None
    return LutSpec(d["uid"], d["shape"], None if d["table"] is None else np.asarray(d["table"], dtype=np.float32))


def _part10_head(*, transfer_syntax: str, sop_class: str, sop_instance: str) -> bytes:
    """Preamble, DICM and File Meta Information: what precedes a data set encoded in `transfer_syntax`."""
    head = Dataset()
    head.file_meta = FileMetaDataset()
    head.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    head.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    head.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    buf = io.BytesIO()
    dcmwrite(buf, head, enforce_file_format=True)  # an empty data set: the header alone
    return buf.getvalue()


def _part10(body: bytes, *, transfer_syntax: str, sop_class: str, sop_instance: str) -> bytes:
    return _part10_head(transfer_syntax=transfer_syntax, sop_class=sop_class, sop_instance=sop_instance) + body


def image_object_parts(modification_list: bytes | memoryview, *, transfer_syntax: str, sop_class: str,
                       image_box_uid: str) -> list[bytes | memoryview]:
    """The image object of one image box N-SET, from the request's own encoded data set, as the parts to
    write one after the other (the 8 MB data set is not copied into a joined object)."""
    return [_part10_head(transfer_syntax=transfer_syntax, sop_class=sop_class, sop_instance=image_box_uid),
            modification_list]


def image_object(modification_list: bytes, *, transfer_syntax: str, sop_class: str, image_box_uid: str) -> bytes:
    """The image object of one image box N-SET, from the request's own encoded data set."""
    return b"".join(image_object_parts(modification_list, transfer_syntax=transfer_syntax, sop_class=sop_class,
                                       image_box_uid=image_box_uid))


def image_object_of(image: JobImage) -> bytes:
    """An image object encoded from the decoded item, for an image that was not spooled at its N-SET."""
    ds = Dataset()
    ds.ImageBoxPosition = image.position
    setattr(ds, "BasicColorImageSequence" if image.color else "BasicGrayscaleImageSequence", Sequence([image.item]))
    buf = io.BytesIO()
    dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    sop_class = COLOR_IMAGE_BOX if image.color else GRAYSCALE_IMAGE_BOX
    return _part10(buf.getvalue(), transfer_syntax=ExplicitVRLittleEndian, sop_class=sop_class,
                   sop_instance=generate_uid())


def image_item(data: bytes, *, color: bool) -> Dataset:
    """The image sequence item an image object holds (what the renderer prints)."""
    ds = dcmread(io.BytesIO(data))
    seq = ds.get("BasicColorImageSequence" if color else "BasicGrayscaleImageSequence")
    if not seq:
        raise ValueError("spooled image object holds no image sequence item")
    return seq[0]


def manifest(job: FilmJob, image_keys: list[str]) -> bytes:
    """The job's facts and where its images are, image i of the job in `image_keys[i]`."""
    meta: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "film_id": job.film_id, "job_uid": job.job_uid, "film_box_uid": job.film_box_uid,
        "session_uid": job.session_uid, "calling_ae": job.calling_ae, "called_ae": job.called_ae,
        "peer": job.peer, "session": job.session, "film": job.film, "annotations": job.annotations,
        "lut": _lut_json(job.lut), "study_uids": job.study_uids, "printed_at": job.printed_at.isoformat(),
        "collated": job.collated,
        "images": [{"position": i.position, "color": i.color, "polarity": i.polarity,
                    "magnification": i.magnification, "requested_size_mm": i.requested_size_mm,
                    "decimate_crop": i.decimate_crop, "lut": _lut_json(i.lut), "key": key}
                   for i, key in zip(job.images, image_keys, strict=True)],
    }
    return json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8")


def manifest_image_keys(data: bytes) -> list[str]:
    return [i["key"] for i in json.loads(data)["images"]]


def _job(meta: dict[str, Any], images: list[JobImage]) -> FilmJob:
    return FilmJob(
        film_id=meta["film_id"], job_uid=meta["job_uid"], film_box_uid=meta["film_box_uid"],
        session_uid=meta["session_uid"], calling_ae=meta["calling_ae"], called_ae=meta["called_ae"],
        peer=meta["peer"], session=meta["session"], film=meta["film"], images=images,
        annotations=meta["annotations"], lut=_lut_from(meta["lut"]), study_uids=meta["study_uids"],
        printed_at=datetime.fromisoformat(meta["printed_at"]), collated=meta["collated"],
    )


def load(manifest_data: bytes, objects: dict[str, bytes]) -> FilmJob:
    """The job from its manifest and its image objects (key -> bytes)."""
    meta = json.loads(manifest_data)
    images = [JobImage(i["position"], i["color"], image_item(objects[i["key"]], color=i["color"]), i["polarity"],
                       i["magnification"], i["requested_size_mm"], _lut_from(i["lut"]), i["key"],
                       i.get("decimate_crop"))  # absent in manifests written before CROP was honoured
              for i in meta["images"]]
    return _job(meta, images)


def load_legacy(data: bytes) -> FilmJob:
    """A job spooled by an earlier version: one DICOM file, the facts as JSON in a private element."""
    ds = dcmread(io.BytesIO(data))
    meta = json.loads(ds.private_block(0x0009, _LEGACY_CREATOR)[0x10].value)
    by_pos = {}
    for it in ds.ReferencedImageBoxSequence:
        seq = it.get("BasicColorImageSequence") or it.get("BasicGrayscaleImageSequence")
        by_pos[int(it.ImageBoxPosition)] = seq[0]
    images = [JobImage(i["position"], i["color"], by_pos[i["position"]], i["polarity"], i["magnification"],
                       i["requested_size_mm"], _lut_from(i["lut"])) for i in meta["images"]]
    return _job(meta, images)
