"""DICOM side of the worklist: the MWL C-FIND and MPPS SCP (pynetdicom), thin over the domain."""
