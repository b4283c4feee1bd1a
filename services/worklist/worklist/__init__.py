"""Worklist: DICOM Modality Worklist (C-FIND) and MPPS."""
